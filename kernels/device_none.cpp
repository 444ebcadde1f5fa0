// Used when the build has no CUDA compiler: reports that no device can be used, and refuses the CUDA backend.
#include "io/error.h"
#include "kernels/device.h"
#include "kernels/doa_gpu.h"
#include "kernels/pipeline_gpu.h"

namespace bsim::cuda {

bool built_with_cuda() { return false; }

std::vector<std::string> list_devices(std::string* why_none) {
  if (why_none) *why_none = "this bsim was built without CUDA (no nvcc at configure time)";
  return {};
}

double peak_memory_gb_s(int) { return 0.0; }

void use_device(int) {
  throw InputError("--device cuda: this bsim was built without CUDA (no nvcc at configure time); use --device cpu");
}

int current_device() {
  throw InputError("--device cuda: this bsim was built without CUDA (no nvcc at configure time); use --device cpu");
}

std::unique_ptr<BlockBackend> make_cuda_backend(const Renderer&, int) {
  throw InputError("--device cuda: this bsim was built without CUDA (no nvcc at configure time); use --device cpu");
}

DoaBatchFn make_gpu_doa(const ClassicDoa&, int, int) {
  throw InputError("--device cuda: this bsim was built without CUDA (no nvcc at configure time); use --device cpu");
}

}  // namespace bsim::cuda
