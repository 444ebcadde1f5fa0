// One check macro for CUDA runtime and cuFFT calls: failures become bsim::RuntimeError naming the
// expression, file and line (library code never exits).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>

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

// The dynamic shared memory one block may take on the current device with cudaFuncSetAttribute's opt-in
// (227 KiB on sm_90).
inline size_t shared_opt_in_bytes() {
  int device = 0;
  cudaDeviceProp prop{};
  check(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", __FILE__, __LINE__);
  return prop.sharedMemPerBlockOptin;
}

// Lets `kernel` take `bytes` of dynamic shared memory on the current device, never lowering what it was allowed
// before: the limit (cudaFuncAttributeMaxDynamicSharedMemorySize) belongs to the kernel, shared by every object
// that launches it, so an object with smaller blocks constructed later must not take it from one that lives on.
inline void allow_dynamic_shared(const void* kernel, int bytes) {
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, int> allowed;  // (device, kernel) -> bytes
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice", __FILE__, __LINE__);
  const std::lock_guard<std::mutex> lock(mutex);
  int& now = allowed[{device, kernel}];
  if (bytes <= now) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
        "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", __FILE__, __LINE__);
  now = bytes;
}
}  // namespace bsim::cuda
