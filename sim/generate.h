// `bsim generate`: render N examples on worker threads and stream them into an HDF5 shard.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"
#include "sim/pipeline.h"

namespace bsim {

struct GenerateOptions {
  std::string out;
  long long rooms = 0;
  bool resume = false;  // continue "<out>.partial" from its last flushed block
  bool force = false;   // overwrite an existing <out>
  bool quiet = false;
  // Global index of the first example: example j of this shard is example first_index + j of the seed, so
  // ranks of a parallel job (RANK x rooms) write disjoint, reproducible parts of one dataset.
  long long first_index = 0;
};

// One rendered block as the shard writer needs it: contiguous [count][2][T] audio (float32, and float16
// where the backend converted it already), teacher [count][F][frames], and each example's metadata.
struct BlockView {
  int count = 0;
  const float* clean = nullptr;
  const float* augmented = nullptr;
  const uint16_t* clean_half = nullptr;      // optional
  const uint16_t* augmented_half = nullptr;  // optional
  const float* teacher = nullptr;
  const std::vector<Example>* examples = nullptr;  // audio vectors empty
};

// Who renders the blocks: the CPU renderer (make_cpu_backend) or the CUDA pipeline (kernels/). Blocks are
// collected in the order they were submitted; a view stays valid until two more blocks have been collected.
class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  virtual int block_size() const = 0;
  virtual void submit(long long first_index, int count) = 0;  // at most two blocks submitted, not collected
  virtual BlockView collect() = 0;
  virtual std::string describe() const = 0;
  virtual double device_seconds() const { return 0; }  // GPU busy time so far (0 for the CPU)
};

std::unique_ptr<BlockBackend> make_cpu_backend(const Renderer& renderer);

// Set by a signal handler: workers stop, the last complete block is flushed, Interrupted is thrown and
// "<out>.partial" stays for --resume. Any other error deletes the partial file.
extern std::atomic<bool> g_stop_requested;

// `make_backend` chooses the renderer (default: the CPU); it is called after every input has been checked.
void generate_shard(const Config& cfg, const GenerateOptions& opt,
                    const std::function<std::unique_ptr<BlockBackend>(const Renderer&)>& make_backend = {});

// The config text stored in shards and compared on --resume (speed-only keys excluded: threads, speech.cache_mb).
std::string stored_config_yaml(const Config& cfg);

}  // namespace bsim
