// One spelling for kernel launches in the host code: BSIM_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...)
// is kernel<<<grid, block, shared_bytes, stream>>>(args...) under nvcc, and a checked launch on the CPU in the
// emulated backend (kernels/emulated_runtime/cuda_runtime.h).
#pragma once
#include <cuda_runtime.h>

#if defined(__CUDACC__)
#define BSIM_LAUNCH(kernel, grid, block, shared, stream) kernel<<<(grid), (block), (shared), (stream)>>>
#endif
