// What CUDA devices this process can use. Host-only header: callers never see CUDA types.
#pragma once
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "io/error.h"

namespace bsim::cuda {

// True when this build contains the CUDA kernels (nvcc was found at configure time).
bool built_with_cuda();

// One line per visible device ("0: NVIDIA H100 80GB HBM3, cc 9.0, 79.1 GiB, 3352 GB/s"); empty without devices.
// Never throws: a missing driver reads as no devices, with the reason in `why_none`.
std::vector<std::string> list_devices(std::string* why_none = nullptr);

// Peak global-memory bandwidth of a device in GB/s (2 x memory clock x bus width: what memory-bound floors
// divide by); 0 where it cannot be read.
double peak_memory_gb_s(int device = 0);

// Makes `index` the calling thread's current device (where the GPU backend then allocates and launches).
// Throws RuntimeError naming the device when it cannot be used.
void use_device(int index);
// The calling thread's current device (a thread starts on device 0): what a background thread that launches
// for its creator must make current with use_device.
int current_device();

// The device a `--device` value names among the n_devices visible: "cuda:N" is device N; plain "cuda" is the
// process's local rank on its machine where a launcher set one (LOCAL_RANK from torchrun, else SLURM_LOCALID),
// modulo n_devices, so that the ranks of one machine take its GPUs in turn; else device 0. InputError naming
// the flag or the variable otherwise. `env` reads the environment (a parameter for the tests).
inline int cuda_device_index(const std::string& spec, int n_devices,
                             const std::function<const char*(const char*)>& env = [](const char* v) { return std::getenv(v); }) {
  const auto whole_number = [](const std::string& s) {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoi(s);
  };
  if (spec.rfind("cuda:", 0) == 0) {
    const int n = whole_number(spec.substr(5));
    if (n < 0) throw InputError("--device '" + spec + "': the device index after cuda: must be a whole number (cuda:0)");
    if (n >= n_devices)
      throw InputError("--device " + spec + ": " + std::to_string(n_devices) + " CUDA device(s) visible (cuda:0" +
                       (n_devices > 1 ? " .. cuda:" + std::to_string(n_devices - 1) : std::string()) + "; `bsim devices`)");
    return n;
  }
  if (spec != "cuda") throw InputError("--device must be cpu, cuda or cuda:N, not '" + spec + "'");
  for (const char* var : {"LOCAL_RANK", "SLURM_LOCALID"})
    if (const char* v = env(var)) {
      const int r = whole_number(v);
      if (r < 0) throw InputError(std::string(var) + "='" + v + "' is not a local rank: unset it or use --device cuda:N");
      return r % n_devices;
    }
  return 0;
}

}  // namespace bsim::cuda
