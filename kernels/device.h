// What CUDA devices this process can use. Host-only header: callers never see CUDA types.
#pragma once
#include <string>
#include <vector>

namespace bsim::cuda {

// True when this build contains the CUDA kernels (nvcc was found at configure time).
bool built_with_cuda();

// One line per visible device ("0: NVIDIA H100 80GB HBM3, cc 9.0, 79.1 GiB, 3352 GB/s"); empty without devices.
// Never throws: a missing driver reads as no devices, with the reason in `why_none`.
std::vector<std::string> list_devices(std::string* why_none = nullptr);

// Peak global-memory bandwidth of a device in GB/s (2 x memory clock x bus width: what memory-bound floors
// divide by); 0 where it cannot be read.
double peak_memory_gb_s(int device = 0);

}  // namespace bsim::cuda
