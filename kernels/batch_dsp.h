// Batched DSP on the GPU with cuFFT: FFT convolution of many examples' speech with their filters, and the
// teacher features (STFT framing of sim/features.h, then GCC-PHAT / IPD / ILD). The CPU versions in
// sim/fft.h and sim/features.h are the references (tests/test_gpu.cpp). Host header: no CUDA types; the
// synchronous host-memory entry points here serve tests and benchmarks, the pipeline keeps data on device.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"

namespace bsim::cuda {

// An implementation switch from the environment (BSIM_CONV_KERNEL, BSIM_TEACHER_KERNEL, BSIM_PIPELINE_CONV):
// "fused" or "cufft", `fallback` when unset; any other value is an InputError naming the variable.
std::string kernel_choice(const char* variable, const char* fallback);

// out[b][f][0..T) = (x[b] * h[b][f])[0..T): B examples, F filters each (e.g. BRIR L/R + direct L/R).
// Uniformly partitioned overlap-save with the transforms in shared memory (kernels/conv_fused.cuh; an even F),
// blocks of `block` samples (a power of two, transforms of 2 x block points), FFT passes of radix 8 or 16
// (max_radix; 16 by measurement: 1.89 against 2.13 us per example with blocks of 2048 on an H100, run 7 of
// bench/RESULTS.md); BSIM_CONV_KERNEL=cufft (or an odd F) takes one full-length cuFFT transform per operand.
class BatchConvolver {
 public:
  BatchConvolver(int max_batch, int n_filters, int n_samples, int filter_length, int block = 2048,
                 int max_radix = 16);
  ~BatchConvolver();
  BatchConvolver(const BatchConvolver&) = delete;
  BatchConvolver& operator=(const BatchConvolver&) = delete;
  // x: [B][T]; h: [B][F][L]; out: [B][F][T]. Synchronises before returning.
  void run(int batch, const std::vector<float>& x, const std::vector<float>& h, std::vector<float>& out);
  // The device part of run() alone, on the inputs of the last run() (for kernel benchmarks). Synchronises.
  void recompute();
  int fft_size() const;  // transform size: 4096 (partitioned) or the full-length size
  bool fused() const;    // partitioned overlap-save in shared memory (kernels/conv_fused.cuh), else one cuFFT
                         // transform of the whole signal per operand

  struct Impl;  // public so that the file-local compute step can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Launch shape of the one-pass teacher kernel: frames per block (even) and threads per block; 0 takes the
// default (the measured best, bench/RESULTS.md). The benchmarks sweep it.
struct FusedTeacherLaunch {
  int frames_per_block = 0;
  int threads = 0;
};

// Teacher features of B binaural pairs [B][2][T] -> [B][features][frames], layout and values as
// sim/features.h's teacher_features().
class BatchTeacher {
 public:
  BatchTeacher(const FeatureConfig& cfg, int max_batch, int n_samples, FusedTeacherLaunch launch = {});
  ~BatchTeacher();
  BatchTeacher(const BatchTeacher&) = delete;
  BatchTeacher& operator=(const BatchTeacher&) = delete;
  void run(int batch, const std::vector<float>& audio, std::vector<float>& out);
  void recompute();  // the device part of run() on the last run()'s audio (for kernel benchmarks)
  // Device-side use (the pipeline): features of device_audio [max_batch][2][T] into device_out
  // [max_batch][F][frames], enqueued on `stream` (a cudaStream_t). Rows past the batch in use are computed on
  // whatever they hold and never read.
  void enqueue_device(const float* device_audio, float* device_out, void* stream);
  int n_features() const;
  int n_frames() const;
  bool fused() const;  // true: the one-pass kernel (kernels/teacher_fused.cuh); false: framing + cuFFT
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace bsim::cuda
