// One check macro for CUDA runtime and cuFFT calls: failures become bsim::RuntimeError naming the
// expression, file and line (library code never exits).
#pragma once
#include <cuda_runtime.h>

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
