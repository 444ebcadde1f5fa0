// Stand-in used when the build has no CUDA compiler: reports that no device can be used.
#include "kernels/device.h"

namespace bsim::cuda {

bool built_with_cuda() { return false; }

std::vector<std::string> list_devices(std::string* why_none) {
  if (why_none) *why_none = "this bsim was built without CUDA (no nvcc at configure time)";
  return {};
}

}  // namespace bsim::cuda
