// `bsim generate`: render N examples on worker threads and stream them into an HDF5 shard.
#pragma once
#include <atomic>
#include <string>

#include "io/config.h"

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

// Set by a signal handler: workers stop, the last complete block is flushed, Interrupted is thrown and
// "<out>.partial" stays for --resume. Any other error deletes the partial file.
extern std::atomic<bool> g_stop_requested;

void generate_shard(const Config& cfg, const GenerateOptions& opt);

// The config text stored in shards and compared on --resume (speed-only keys excluded: threads, speech.cache_mb).
std::string stored_config_yaml(const Config& cfg);

}  // namespace bsim
