// One check macro for CUDA runtime and cuFFT calls: failures become bsim::RuntimeError naming the
// expression, file and line (library code never exits).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "io/error.h"

namespace bsim::cuda {
inline void check(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess)
    throw ::bsim::RuntimeError(std::string("CUDA error ") + cudaGetErrorString(e) + " in " + expr + " at " + file +
                               ":" + std::to_string(line));
}
}  // namespace bsim::cuda

#define BSIM_CUDA_TRY(expr) ::bsim::cuda::check((expr), #expr, __FILE__, __LINE__)

namespace bsim::cuda {
// A device allocation that did not fit, with the sizes (callers add what the memory was for).
class OutOfDeviceMemory : public ::bsim::RuntimeError {
 public:
  using ::bsim::RuntimeError::RuntimeError;
};

// cudaMalloc that throws OutOfDeviceMemory naming the request and what is free, or RuntimeError otherwise.
inline void* device_malloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const auto gib = [](size_t b) {
      char s[32];
      std::snprintf(s, sizeof s, "%.2f", double(b) / double(1ull << 30));
      return std::string(s);
    };
    throw OutOfDeviceMemory("GPU out of memory: " + gib(bytes) + " GiB requested, " + gib(free_b) + " GiB free of " +
                            gib(total_b) + " GiB");
  }
  check(e, "cudaMalloc", __FILE__, __LINE__);
  return p;
}
}  // namespace bsim::cuda
