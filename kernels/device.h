// What CUDA devices this process can use. Host-only header: callers never see CUDA types.
#pragma once
#include <string>
#include <vector>

namespace bsim::cuda {

// True when this build contains the CUDA kernels (nvcc was found at configure time).
bool built_with_cuda();

// One line per visible device ("0: NVIDIA H100 80GB HBM3, cc 9.0, 79.1 GiB"); empty without devices.
// Never throws: a missing driver reads as no devices, with the reason in `why_none`.
std::vector<std::string> list_devices(std::string* why_none = nullptr);

}  // namespace bsim::cuda
