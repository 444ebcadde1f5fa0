// CUDA device discovery (the first piece of the GPU backend; the kernels themselves follow in kernels/).
#include <cuda_runtime.h>

#include <cstdio>

#include "kernels/device.h"

namespace bsim::cuda {

bool built_with_cuda() { return true; }

std::vector<std::string> list_devices(std::string* why_none) {
  std::vector<std::string> out;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why_none) *why_none = cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky error
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    char line[256];
    std::snprintf(line, sizeof line, "%d: %s, cc %d.%d, %.1f GiB", i, p.name, p.major, p.minor,
                  double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    out.emplace_back(line);
  }
  if (out.empty() && why_none) *why_none = "no CUDA device is visible";
  return out;
}

}  // namespace bsim::cuda
