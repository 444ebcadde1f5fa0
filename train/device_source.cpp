// On-the-fly batches rendered on the GPU and handed to the trainer in device memory (no copy, no disk).
// A producer thread plans batch k and enqueues it into slot k mod n as soon as the trainer has released the
// batch that held that slot before (release() records an event on the trainer's stream, which the pipeline's
// stream waits for); the trainer's stream waits for the slot's completion event. The host never waits for
// the GPU here, only for planning to keep up.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "io/error.h"
#include "sim/features.h"
#include "sim/pipeline.h"
#include "train/batch_source.h"

#if BSIM_HAVE_CUDA
#include "kernels/device.h"
#include "kernels/pipeline_gpu.h"
#endif

namespace bsim {

#if BSIM_HAVE_CUDA
namespace {

class DeviceSource : public BatchSource {
 public:
  DeviceSource(const Config& cfg, long long first, long long pool, BatchShare share)
      : renderer_(cfg),
        global_B_(cfg.train.batch_size),
        B_(share_size(cfg, share)),
        offset_(share.rank * B_),
        slots_(cfg.train.prefetch_batches + 1),
        device_(cuda::current_device()),
        pool_(pool),
        pipe_(renderer_, B_, slots_, false),
        next_(first),
        produced_(first),
        shape_(teacher_shape(cfg.features, renderer_.n_samples())) {
    released_.assign(size_t(slots_), true);
    thread_ = std::thread([this] { loop(); });
  }
  ~DeviceSource() override {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::string describe() const override {
    return "on the fly (CUDA pipeline, " + std::to_string(slots_) + " device slots" +
           (pool_ > 0 ? ", " + std::to_string(pool_) + " labelled examples" : "") + ")";
  }

  Batch next() override {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return produced_ > next_ || error_; });
    if (produced_ <= next_ && error_) std::rethrow_exception(error_);
    const long long k = next_++;
    const int slot = int(k % slots_);
    const std::vector<Example>& ex = pipe_.planned(slot);
    Batch b;
    b.index = k;
    b.size = B_;
    b.n_samples = renderer_.n_samples();
    b.n_features = shape_.n_features;
    b.n_frames = shape_.n_frames;
    for (const Example& e : ex) {
      b.azimuth_deg.push_back(float(e.scene.azimuth_deg));
      b.snr_db.push_back(float(e.scene.snr_db));
      b.t60_s.push_back(float(e.scene.anechoic ? 0.0 : e.scene.t60_s));
      b.noise_type.push_back(float(int(e.scene.noise_type)));
      b.example_index.push_back(double(e.scene.index));
    }
    auto d = std::make_shared<DeviceBatch>();
    d->augmented = pipe_.augmented(slot);
    d->teacher = pipe_.teacher(slot);
    d->wait = [this, slot](void* stream) { pipe_.consumer_wait(slot, stream); };
    d->release = [this, slot](void* stream) {
      std::lock_guard<std::mutex> guard(m_);
      pipe_.release(slot, stream);
      released_[size_t(slot)] = true;
      cv_.notify_all();
    };
    d->stall_ms = [this, slot] { return pipe_.consumer_stall_ms(slot); };
    b.device = std::move(d);
    return b;
  }

 private:
  void loop() {
    try {
      cuda::use_device(device_);  // this thread launches on its creator's device (a rank's own GPU)
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    for (long long k = produced_;; ++k) {
      const int slot = int(k % slots_);
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return stop_ || released_[size_t(slot)]; });
        if (stop_) return;
        released_[size_t(slot)] = false;
      }
      try {
        std::vector<uint64_t> idx(static_cast<size_t>(B_));
        for (int i = 0; i < B_; ++i) {
          long long e = k * global_B_ + offset_ + i;
          if (pool_ > 0) e %= pool_;
          idx[size_t(i)] = uint64_t(e);
        }
        // Not under the lock: planning takes milliseconds. The pipeline is safe here because this thread only
        // touches slots the trainer has released, and the trainer only slots handed out under the lock.
        pipe_.enqueue(idx, slot);
        std::lock_guard<std::mutex> lock(m_);
        produced_ = k + 1;
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      cv_.notify_all();
    }
  }

  const Renderer renderer_;
  const int global_B_, B_, offset_, slots_, device_;
  const long long pool_;
  cuda::DevicePipeline pipe_;
  long long next_, produced_;
  FeatureShape shape_;
  std::vector<bool> released_;
  std::mutex m_;
  std::condition_variable cv_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<BatchSource> make_device_source(const Config& cfg, long long first, long long pool, BatchShare share) {
  std::string why;
  if (cuda::list_devices(&why).empty()) throw InputError("train.simulator=cuda: " + why + "; use train.simulator=cpu");
  return std::make_unique<DeviceSource>(cfg, first, pool, share);
}

#else

std::unique_ptr<BatchSource> make_device_source(const Config&, long long, long long, BatchShare) {
  throw InputError("train.simulator=cuda: this build has no CUDA kernels (no nvcc at configure time); "
                   "use train.simulator=cpu");
}

#endif

}  // namespace bsim
