// Host side of the batched classic DoA estimators: tables uploaded once, three launches per batch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "kernels/brir_gpu.h"
#include "kernels/check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/launch.cuh"
#include "kernels/doa_gpu.h"
#include "kernels/doa_kernels.cuh"
#include "sim/features.h"

namespace bsim::cuda {

namespace {
constexpr int kThreads = 256;
}

struct BatchClassicDoa::Impl {
  DoaParams p{};
  int max_batch = 0;
  DeviceBuffer<float> audio, window;
  DeviceBuffer<float2> twiddle, X;
  DeviceBuffer<DoaStats> stats;
  DeviceBuffer<DoaSteering> steer;
  DeviceBuffer<double> itd;
  DeviceBuffer<int> choice;
  int stft_smem = 0, decide_smem = 0;
  Stream stream;
};

BatchClassicDoa::BatchClassicDoa(const ClassicDoa& cpu, int max_batch, int T) : impl_(std::make_unique<Impl>()) {
  if (!device_available()) throw RuntimeError("no CUDA device is visible: the GPU DoA estimators cannot start");
  Impl& m = *impl_;
  const FeatureConfig& fc = cpu.stft_config();
  const int n = fc.n_fft;
  if ((n & (n - 1)) != 0 || n < 16 || n > 1024 || fc.win_length > n)
    throw InputError("GPU DoA: features.n_fft must be a power of two in 16..1024 and features.win_length <= n_fft");
  m.max_batch = max_batch;
  m.p = doa_params(cpu, T);
  const DoaParams& p = m.p;
  if (p.n_frames < 1) throw InputError("GPU DoA: examples shorter than one STFT frame");
  const std::vector<float> w = stft_window(fc);
  const std::vector<float2> tw = fft_twiddles(n, 8);
  const std::vector<DoaSteering> steer = doa_steering(cpu);
  m.window = to_device(w), m.twiddle = to_device(tw), m.steer = to_device(steer), m.itd = to_device(cpu.itd_table());
  m.audio = DeviceBuffer<float>(size_t(max_batch) * 2 * T);
  m.X = DeviceBuffer<float2>(size_t(max_batch) * 2 * p.n_frames * p.bins);
  m.stats = DeviceBuffer<DoaStats>(size_t(max_batch) * p.bins);
  m.choice = DeviceBuffer<int>(size_t(max_batch) * kClassicMethods);
  m.stft_smem = doa_stft_shared_bytes(p);
  m.decide_smem = doa_decide_shared_bytes(p, kThreads);
  allow_dynamic_shared((const void*)doa_stft_kernel(p.log2_n), m.stft_smem);
  allow_dynamic_shared((const void*)doa_decide, m.decide_smem);
}

BatchClassicDoa::~BatchClassicDoa() = default;

std::vector<BatchClassicDoa::Choices> BatchClassicDoa::estimate(const float* audio, int count) {
  Impl& m = *impl_;
  if (count < 1 || count > m.max_batch)
    throw InputError("GPU DoA: batch of " + std::to_string(count) + ", built for at most " + std::to_string(m.max_batch));
  const DoaParams& p = m.p;
  cudaStream_t s = m.stream.get();
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.audio.get(), audio, size_t(count) * 2 * p.T * sizeof(float), cudaMemcpyHostToDevice, s));
  const dim3 grid((p.n_frames + p.frames_per_block - 1) / p.frames_per_block, count);
  const DoaStftKernel doa_stft_n = doa_stft_kernel(p.log2_n);
  BSIM_LAUNCH(doa_stft_n, grid, kThreads, m.stft_smem, s)(m.audio.get(), m.window.get(), m.twiddle.get(), p, m.X.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(doa_statistics, count, kThreads, 0, s)(m.X.get(), p, m.stats.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(doa_decide, count, kThreads, m.decide_smem, s)(
      m.stats.get(), m.steer.get(), m.itd.get(), p, m.choice.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  std::vector<int> flat(size_t(count) * kClassicMethods);
  BSIM_CUDA_TRY(cudaMemcpyAsync(flat.data(), m.choice.get(), flat.size() * sizeof(int), cudaMemcpyDeviceToHost, s));
  BSIM_CUDA_TRY(cudaStreamSynchronize(s));
  std::vector<Choices> out(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i)
    std::copy_n(flat.begin() + long(i) * kClassicMethods, kClassicMethods, out[size_t(i)].begin());
  return out;
}

DoaBatchFn make_gpu_doa(const ClassicDoa& cpu, int max_batch, int n_samples) {
  auto gpu = std::make_shared<BatchClassicDoa>(cpu, max_batch, n_samples);
  return [gpu](const float* audio, int count) { return gpu->estimate(audio, count); };
}

}  // namespace bsim::cuda
