// CUDA device discovery (the first piece of the GPU backend; the kernels themselves follow in kernels/).
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

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
    char line[384];  // the name (up to 255 characters) and the numbers
    std::snprintf(line, sizeof line, "%d: %s, cc %d.%d, %.1f GiB, %.0f GB/s", i, p.name, p.major, p.minor,
                  double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), peak_memory_gb_s(i));
    out.emplace_back(line);
  }
  if (out.empty() && why_none) *why_none = "no CUDA device is visible";
  return out;
}

void use_device(int index) {
  const cudaError_t e = cudaSetDevice(index);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw RuntimeError("CUDA device " + std::to_string(index) + " cannot be used: " + cudaGetErrorString(e));
  }
}

int current_device() {
  int index = 0;
  const cudaError_t e = cudaGetDevice(&index);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw RuntimeError(std::string("cannot tell the current CUDA device: ") + cudaGetErrorString(e));
  }
  return index;
}

double peak_memory_gb_s(int device) {
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess) {
    cudaGetLastError();
    return 0.0;
  }
  return 2.0 * double(clock_khz) * 1e3 * double(bus_bits) / 8.0 / 1e9;  // double data rate
}

}  // namespace bsim::cuda
