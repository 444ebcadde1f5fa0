// Runs fn(i) for i in [0, count) on `threads` threads (the caller's among them). The first exception
// stops the remaining work and is rethrown to the caller.
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "io/launch.h"

namespace bsim {

template <typename Fn>
void parallel_for(int count, int threads, Fn&& fn) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (int i; (i = next.fetch_add(1)) < count;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = count;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// The thread count a config's `threads: 0` means: every core, shared by the ranks a launcher started on this
// machine (torchrun's LOCAL_WORLD_SIZE), so that eight ranks on one node do not each start a thread per core.
inline int resolve_threads(int requested, long long local_ranks = launch_from_env().local_ranks) {
  if (requested > 0) return requested;
  return int(std::max(1LL, (long long)std::max(1u, std::thread::hardware_concurrency()) / std::max(1LL, local_ranks)));
}

}  // namespace bsim
