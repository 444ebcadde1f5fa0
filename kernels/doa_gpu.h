// The classic DoA estimators (doa/classic.h) for batches of examples on the GPU, deciding as the CPU does
// (kernels/doa_kernels.cuh). Host header: no CUDA types.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "doa/classic.h"

namespace bsim::cuda {

class BatchClassicDoa {
 public:
  // Steering tables and band from `cpu` (which must outlive nothing: they are copied); buffers for up to
  // max_batch examples of n_samples.
  BatchClassicDoa(const ClassicDoa& cpu, int max_batch, int n_samples);
  ~BatchClassicDoa();
  BatchClassicDoa(const BatchClassicDoa&) = delete;
  BatchClassicDoa& operator=(const BatchClassicDoa&) = delete;
  // audio [count][2][T] (host) -> per example the candidate index chosen by every method, indexed by
  // ClassicMethod (index into cpu.candidates()). Synchronises.
  using Choices = std::array<int, kClassicMethods>;
  std::vector<Choices> estimate(const float* audio, int count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The same as a function (what apps use: builds without CUDA give one that throws InputError).
using DoaBatchFn = std::function<std::vector<BatchClassicDoa::Choices>(const float* audio, int count)>;
DoaBatchFn make_gpu_doa(const ClassicDoa& cpu, int max_batch, int n_samples);

}  // namespace bsim::cuda
