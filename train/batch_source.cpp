// Background batch production with a bounded queue.
#include "train/batch_source.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "io/error.h"
#include "io/shard.h"
#include "sim/features.h"
#include "sim/parallel.h"
#include "sim/pipeline.h"
#include "sim/rng.h"

namespace bsim {
namespace {

// Runs produce(k) for k = first, first+1, ... on one background thread, at most `depth` batches ahead.
class Prefetcher : public BatchSource {
 public:
  Prefetcher(std::function<Batch(long long)> produce, long long first, int depth, std::string what)
      : produce_(std::move(produce)), next_(first), depth_(depth), what_(std::move(what)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Prefetcher() override {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Batch next() override {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return !queue_.empty() || error_; });
    if (queue_.empty() && error_) std::rethrow_exception(error_);
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return b;
  }
  std::string describe() const override { return what_; }

 private:
  void loop() {
    for (long long k = next_;; ++k) {
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return stop_ || int(queue_.size()) < depth_; });
        if (stop_) return;
      }
      try {
        Batch b = produce_(k);
        std::lock_guard<std::mutex> lock(m_);
        queue_.push_back(std::move(b));
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      cv_.notify_all();
    }
  }
  std::function<Batch(long long)> produce_;
  long long next_;
  int depth_;
  std::string what_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;
};

void check_teacher_shape(const Config& cfg, int n_samples, int n_features, int n_frames, const std::string& where) {
  const FeatureShape s = teacher_shape(cfg.features, n_samples);
  if (s.n_features != n_features || s.n_frames != n_frames)
    throw InputError(where + " has teacher features [" + std::to_string(n_features) + " x " + std::to_string(n_frames) +
                     "] but the config's features.* give [" + std::to_string(s.n_features) + " x " +
                     std::to_string(s.n_frames) + "]: use the shard's own config");
}

}  // namespace

int share_size(const Config& cfg, BatchShare share) {
  const int B = cfg.train.batch_size;
  if (share.ranks < 1 || share.rank < 0 || share.rank >= share.ranks)
    throw InputError("rank " + std::to_string(share.rank) + " of " + std::to_string(share.ranks) + " is not a rank");
  if (B % share.ranks != 0)
    throw InputError("train.batch_size=" + std::to_string(B) + " does not split over " + std::to_string(share.ranks) +
                     " ranks: make it a multiple of " + std::to_string(share.ranks) + " (it is the batch of all ranks together)");
  return B / share.ranks;
}

std::unique_ptr<BatchSource> make_on_the_fly_source(const Config& cfg, long long first, long long example_pool,
                                                    BatchShare share) {
  auto renderer = std::make_shared<const Renderer>(cfg);
  const int global_B = cfg.train.batch_size, B = share_size(cfg, share), offset = share.rank * B;
  const int threads = resolve_threads(cfg.threads);
  const FeatureShape shape = teacher_shape(cfg.features, renderer->n_samples());
  auto produce = [renderer, global_B, B, offset, threads, shape, example_pool](long long k) {
    const int T = renderer->n_samples();
    Batch b;
    b.index = k;
    b.size = B;
    b.n_samples = T;
    b.n_features = shape.n_features;
    b.n_frames = shape.n_frames;
    b.augmented.resize(static_cast<size_t>(B) * 2 * T);
    b.teacher.resize(static_cast<size_t>(B) * shape.n_features * shape.n_frames);
    b.azimuth_deg.resize(static_cast<size_t>(B));
    b.snr_db.resize(static_cast<size_t>(B));
    b.t60_s.resize(static_cast<size_t>(B));
    b.noise_type.resize(static_cast<size_t>(B));
    b.example_index.resize(static_cast<size_t>(B));
    parallel_for(B, threads, [&](int i) {
      long long idx = k * global_B + offset + i;
      if (example_pool > 0) idx %= example_pool;
      const Example e = renderer->render(uint64_t(idx));
      std::copy(e.augmented.begin(), e.augmented.end(), b.augmented.begin() + long(size_t(i) * 2 * T));
      std::copy(e.teacher.begin(), e.teacher.end(), b.teacher.begin() + long(size_t(i) * e.teacher.size()));
      b.azimuth_deg[size_t(i)] = float(e.scene.azimuth_deg);
      b.snr_db[size_t(i)] = float(e.scene.snr_db);
      b.t60_s[size_t(i)] = float(e.scene.anechoic ? 0.0 : e.scene.t60_s);
      b.noise_type[size_t(i)] = float(int(e.scene.noise_type));
      b.example_index[size_t(i)] = double(e.scene.index);
    });
    return b;
  };
  const std::string what = "on the fly (CPU simulator, " + std::to_string(threads) + " threads" +
                           (example_pool > 0 ? ", " + std::to_string(example_pool) + " labelled examples" : "") + ")";
  return std::make_unique<Prefetcher>(produce, first, cfg.train.prefetch_batches, what);
}

std::unique_ptr<BatchSource> make_shard_source(const Config& cfg, const std::string& path, long long first,
                                               bool need_teacher, bool preload, BatchShare share) {
  auto reader = std::make_shared<ShardReader>(path);
  const ShardInfo& info = reader->info();
  const int B = cfg.train.batch_size, rank_B = share_size(cfg, share), offset = share.rank * rank_B;
  if (info.n_examples < B)
    throw InputError("shard '" + path + "' has " + std::to_string(info.n_examples) + " examples, fewer than one batch (" +
                     std::to_string(B) + "): lower train.batch_size");
  const bool has_teacher = reader->has("teacher") && info.n_features > 0;
  if (need_teacher && !has_teacher)
    throw InputError("shard '" + path + "' has no teacher features (/teacher): pretraining needs them");
  if (need_teacher) check_teacher_shape(cfg, info.n_samples, info.n_features, info.n_frames, "shard '" + path + "'");
  if (!reader->has("scene/azimuth_deg")) throw InputError("shard '" + path + "' has no labels (/scene/azimuth_deg)");
  long long blocks = info.n_examples / B;
  if (cfg.train.labelled_examples > 0) blocks = std::max<long long>(1, std::min(blocks, cfg.train.labelled_examples / B));
  const uint64_t seed = cfg.seed;
  // Rows come from the file, or (preload) from memory holding every dataset the batches need: of each block the
  // batches use, this rank's rows (1/N of them on each of N ranks), block after block.
  std::vector<std::string> names{"augmented", "scene/azimuth_deg", "scene/snr_db", "scene/t60_s", "scene/noise_type",
                                 "scene/anechoic"};
  if (has_teacher) names.push_back("teacher");
  auto memory = std::make_shared<std::map<std::string, std::vector<float>>>();
  const long long held_rows = blocks * rank_B;
  if (preload)
    for (const auto& n : names) {
      std::vector<float>& held = (*memory)[n];
      if (share.ranks == 1) {
        reader->read(n, 0, int(held_rows), held);  // the blocks are consecutive: one read
        continue;
      }
      std::vector<float> rows;
      for (long long j = 0; j < blocks; ++j) {
        reader->read(n, j * B + offset, rank_B, rows);
        held.insert(held.end(), rows.begin(), rows.end());
      }
    }
  auto fetch = [reader, memory, preload, B, rank_B, offset, held_rows](const std::string& name, long long start,
                                                                      int count, std::vector<float>& out) {
    if (!preload) return reader->read(name, start, count, out);
    const std::vector<float>& held = memory->at(name);
    const size_t row = held.size() / size_t(held_rows);
    const long long at = (start - offset) / B * rank_B;  // `start`: this rank's first row of a block
    out.assign(held.begin() + long(size_t(at) * row), held.begin() + long(size_t(at + count) * row));
  };
  auto produce = [reader, fetch, B, rank_B, offset, blocks, seed, has_teacher](long long k) {
    const ShardInfo& in = reader->info();
    // Block order of epoch e: a seeded permutation (Fisher-Yates), so shuffling never needs random row reads.
    const long long epoch = k / blocks, pos = k % blocks;
    std::vector<long long> order(static_cast<size_t>(blocks));
    std::iota(order.begin(), order.end(), 0LL);
    Rng rng(seed, uint64_t(epoch), Stream::scene, 77);
    for (long long i = blocks - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.next() % uint64_t(i + 1))]);
    const long long start = order[size_t(pos)] * B + offset;
    Batch b;
    b.index = k;
    b.size = rank_B;
    b.n_samples = in.n_samples;
    b.n_features = has_teacher ? in.n_features : 0;
    b.n_frames = has_teacher ? in.n_frames : 0;
    fetch("augmented", start, rank_B, b.augmented);
    if (has_teacher) fetch("teacher", start, rank_B, b.teacher);
    fetch("scene/azimuth_deg", start, rank_B, b.azimuth_deg);
    fetch("scene/snr_db", start, rank_B, b.snr_db);
    fetch("scene/t60_s", start, rank_B, b.t60_s);
    fetch("scene/noise_type", start, rank_B, b.noise_type);
    std::vector<float> anechoic;
    fetch("scene/anechoic", start, rank_B, anechoic);
    for (int i = 0; i < rank_B; ++i)
      if (anechoic[size_t(i)] != 0) b.t60_s[size_t(i)] = 0;
    b.example_index = reader->example_indices(start, rank_B);
    return b;
  };
  const std::string held = share.ranks > 1 ? ": this rank's " + std::to_string(held_rows) + ")" : ")";
  return std::make_unique<Prefetcher>(produce, first, cfg.train.prefetch_batches,
                                      "shard " + path + " (" + std::to_string(info.n_examples) + " examples" +
                                          (preload ? ", pre-loaded into memory" + held : ", streamed)"));
}

}  // namespace bsim
