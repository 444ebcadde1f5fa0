// Batches for btrain, produced ahead of the trainer on background threads: rendered on the fly by the CPU
// simulator or read from an HDF5 shard. Batch k is a pure function of (config, k), which is what makes
// a resumed run see exactly the data an uninterrupted run would have seen. No libtorch here.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"

namespace bsim {

// A batch that lives in device memory (the CUDA on-the-fly source): the consumer wraps the pointers as
// tensors without a copy, orders its stream after the batch with wait(), and calls release() once every
// kernel that reads the batch has been enqueued; stall_ms() then tells how long its stream waited.
struct DeviceBatch {
  const float* augmented = nullptr;  // [B][2][T] on the device
  const float* teacher = nullptr;    // [B][F][frames]
  std::function<void(void* cuda_stream)> wait, release;
  std::function<double()> stall_ms;
};

struct Batch {
  long long index = 0;  // batch number = data position
  int size = 0, n_samples = 0, n_features = 0, n_frames = 0;
  std::vector<float> augmented;     // [B][2][T]
  std::vector<float> teacher;       // [B][F][frames]
  std::vector<float> azimuth_deg;   // [B]
  std::vector<float> snr_db, t60_s; // [B]; t60 0 = anechoic
  std::vector<float> noise_type;    // [B]: 0 diffuse, 1 point, 2 babble
  std::vector<double> example_index;  // [B]: the example's global index (scene/example_index), for pairing results
  std::shared_ptr<DeviceBatch> device;  // set: augmented/teacher are on the device instead of in the vectors
};

// The part of every batch this process takes in data-parallel training: rank `rank` of `ranks` takes the
// examples rank*b .. rank*b+b-1 of each batch of B = train.batch_size (b = B / ranks; B must divide), so that
// any number of ranks together see exactly the batches one process would.
struct BatchShare {
  int rank = 0, ranks = 1;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Blocks until batch number `next_index()` is ready and returns it; rethrows a producer's error.
  virtual Batch next() = 0;
  virtual std::string describe() const = 0;
};

// Renders batch k from examples k*B .. k*B+B-1 of the config's seed (modulo `example_pool` when > 0, the
// labelled-data limit of fine-tuning), starting at batch `first`; of those, the `share` of this rank.
std::unique_ptr<BatchSource> make_on_the_fly_source(const Config& cfg, long long first, long long example_pool,
                                                    BatchShare share = {});

// The same batches rendered by the CUDA pipeline into a ring of device slots (train.prefetch_batches + 1),
// planned on a background thread, on the device current when it is made; batches are handed out as DeviceBatch.
// Throws InputError in builds without CUDA or without a device.
std::unique_ptr<BatchSource> make_device_source(const Config& cfg, long long first, long long example_pool,
                                                BatchShare share = {});

// Reads batches of consecutive rows of a shard; each epoch visits the row blocks in a seeded random order.
// `need_teacher`: fail unless the shard has teacher features matching the config. `preload`: read the whole
// shard into memory first (the no-I/O upper bound that streamed and on-the-fly data are measured against).
// Each rank reads its `share` of every block.
std::unique_ptr<BatchSource> make_shard_source(const Config& cfg, const std::string& path, long long first,
                                               bool need_teacher, bool preload = false, BatchShare share = {});

// The examples a rank takes per batch; InputError when train.batch_size does not split over the ranks.
int share_size(const Config& cfg, BatchShare share);

}  // namespace bsim
