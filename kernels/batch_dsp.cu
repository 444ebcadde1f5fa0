// cuFFT convolution and teacher features for batches of examples.
#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "io/error.h"
#include "kernels/batch_dsp.h"
#include "kernels/batch_dsp_kernels.cuh"
#include "kernels/check.cuh"
#include "kernels/cufft_plan.cuh"
#include "kernels/teacher_fused.cuh"
#include "kernels/conv_fused.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/launch.cuh"
#include "sim/features.h"
#include "sim/fft.h"

namespace bsim::cuda {
namespace {

constexpr int kTeacherThreads = 256;  // the one-pass teacher's default block, and its power kernel's
int blocks_for(long long n) { return int((n + kDspThreads - 1) / kDspThreads); }

}  // namespace

struct BatchConvolver::Impl {
  int max_batch, n_filters, T, L, n, nb;
  bool fused = false;  // partitioned overlap-save in shared memory (kernels/conv_fused.cuh)
  FusedConvParams cp{};
  int conv_smem = 0;
  DeviceBuffer<float2> conv_twiddle, conv_X, conv_H;
  DeviceBuffer<float> x, h, y;
  DeviceBuffer<cufftComplex> X, H;
  std::unique_ptr<FftPlan> fwd_x, fwd_h, inv;
  Stream stream;
};

namespace {
void compute(BatchConvolver::Impl& m);
}

std::string kernel_choice(const char* variable, const char* fallback) {
  const char* value = std::getenv(variable);
  const std::string choice = value ? value : fallback;
  if (choice != "fused" && choice != "cufft")
    throw InputError(std::string(variable) + "='" + choice + "': use fused or cufft (or leave it unset)");
  return choice;
}

BatchConvolver::BatchConvolver(int max_batch, int n_filters, int T, int L, int block, int max_radix)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.max_batch = max_batch, m.n_filters = n_filters, m.T = T, m.L = L;
  // By measurement (bench/RESULTS.md) the partitioned overlap-save kernels with the shared-memory FFT beat one
  // full-length cuFFT transform per operand (H200: 2.39 against 3.60 us per 4 s example with blocks of 2048),
  // and radix-16 passes beat radix 8 there (H100: 1.89 against 2.13 us). BSIM_CONV_KERNEL=cufft selects the
  // full-length transforms (tested); an odd filter count needs them.
  m.fused = kernel_choice("BSIM_CONV_KERNEL", "fused") == "fused" && n_filters % 2 == 0;
  if (m.fused) {
    if (block < 4 || block > 8192 || (block & (block - 1)) != 0)
      throw InputError("BatchConvolver: block " + std::to_string(block) + " must be a power of two in 4..8192");
    if (max_radix != 8 && max_radix != 16)
      throw InputError("BatchConvolver: max_radix " + std::to_string(max_radix) + " must be 8 or 16");
    m.cp = fused_conv_params(T, L, n_filters, block, max_radix);
    m.conv_smem = fused_conv_shared_bytes(m.cp);
    // Blocks of 8192 need 2 x 16,384-point buffers (288 kB), past any device's opt-in: say so, not as a CUDA error.
    const size_t limit = shared_opt_in_bytes();
    if (size_t(m.conv_smem) > limit) {
      int fits = block;
      while (fits > 4 && size_t(fused_conv_shared_bytes(fused_conv_params(T, L, n_filters, fits, max_radix))) > limit)
        fits /= 2;
      throw InputError("BatchConvolver: blocks of " + std::to_string(block) + " samples need " +
                       std::to_string(m.conv_smem / 1024) + " KiB of shared memory per thread block, " +
                       "this device allows " + std::to_string(limit / 1024) + " KiB: use blocks of at most " +
                       std::to_string(fits));
    }
    for (const void* k : {(const void*)conv_input_spectra<8>, (const void*)conv_filter_spectra<8>,
                          (const void*)conv_output_blocks<8>, (const void*)conv_input_spectra<16>,
                          (const void*)conv_filter_spectra<16>, (const void*)conv_output_blocks<16>,
                          (const void*)conv_input_spectra<16, kConvFixedLog2N>,
                          (const void*)conv_filter_spectra<16, kConvFixedLog2N>,
                          (const void*)conv_output_blocks<16, kConvFixedLog2N>})
      allow_dynamic_shared(k, m.conv_smem);
    m.conv_twiddle = to_device(fft_twiddles(m.cp.N, m.cp.max_radix));
    const size_t bins = size_t(m.cp.bins);
    m.conv_X = DeviceBuffer<float2>(size_t(max_batch) * m.cp.J2 * bins);
    m.conv_H = DeviceBuffer<float2>(size_t(max_batch) * (n_filters / 2) * m.cp.Q * 2 * bins);
    m.x = DeviceBuffer<float>(size_t(max_batch) * T);
    m.h = DeviceBuffer<float>(size_t(max_batch) * n_filters * L);
    m.y = DeviceBuffer<float>(size_t(max_batch) * n_filters * T);
    m.n = m.cp.N;
    return;
  }
  m.n = good_fft_size(T + L - 1);
  m.nb = m.n / 2 + 1;
  m.x = DeviceBuffer<float>(size_t(max_batch) * m.n);
  m.h = DeviceBuffer<float>(size_t(max_batch) * n_filters * m.n);
  m.y = DeviceBuffer<float>(size_t(max_batch) * n_filters * m.n);
  m.X = DeviceBuffer<cufftComplex>(size_t(max_batch) * m.nb);
  m.H = DeviceBuffer<cufftComplex>(size_t(max_batch) * n_filters * m.nb);
  m.fwd_x = std::make_unique<FftPlan>(m.n, CUFFT_R2C, max_batch, m.n, m.nb);
  m.fwd_h = std::make_unique<FftPlan>(m.n, CUFFT_R2C, max_batch * n_filters, m.n, m.nb);
  m.inv = std::make_unique<FftPlan>(m.n, CUFFT_C2R, max_batch * n_filters, m.nb, m.n);
  for (auto* p : {m.fwd_x.get(), m.fwd_h.get(), m.inv.get()}) BSIM_CUFFT_TRY(cufftSetStream(p->get(), m.stream.get()));
}
BatchConvolver::~BatchConvolver() = default;
int BatchConvolver::fft_size() const { return impl_->n; }
bool BatchConvolver::fused() const { return impl_->fused; }

void BatchConvolver::run(int B, const std::vector<float>& x, const std::vector<float>& h, std::vector<float>& out) {
  Impl& m = *impl_;
  if (B != m.max_batch) throw InputError("BatchConvolver: plans are made for batches of " + std::to_string(m.max_batch));
  cudaStream_t s = m.stream.get();
  if (m.fused) {
    BSIM_CUDA_TRY(cudaMemcpyAsync(m.x.get(), x.data(), size_t(B) * m.T * sizeof(float), cudaMemcpyHostToDevice, s));
    BSIM_CUDA_TRY(cudaMemcpyAsync(m.h.get(), h.data(), size_t(B) * m.n_filters * m.L * sizeof(float), cudaMemcpyHostToDevice, s));
    compute(m);
    out.resize(size_t(B) * m.n_filters * m.T);
    BSIM_CUDA_TRY(cudaMemcpyAsync(out.data(), m.y.get(), out.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
    BSIM_CUDA_TRY(cudaStreamSynchronize(s));
    return;
  }
  // Zero-padded copies in: one 2-D copy per operand (rows of T or L samples into rows of n).
  BSIM_CUDA_TRY(cudaMemsetAsync(m.x.get(), 0, size_t(B) * m.n * sizeof(float), s));
  BSIM_CUDA_TRY(cudaMemsetAsync(m.h.get(), 0, size_t(B) * m.n_filters * m.n * sizeof(float), s));
  BSIM_CUDA_TRY(cudaMemcpy2DAsync(m.x.get(), m.n * sizeof(float), x.data(), m.T * sizeof(float), m.T * sizeof(float), B,
                                  cudaMemcpyHostToDevice, s));
  BSIM_CUDA_TRY(cudaMemcpy2DAsync(m.h.get(), m.n * sizeof(float), h.data(), m.L * sizeof(float), m.L * sizeof(float),
                                  size_t(B) * m.n_filters, cudaMemcpyHostToDevice, s));
  compute(m);
  out.resize(size_t(B) * m.n_filters * m.T);
  BSIM_CUDA_TRY(cudaMemcpy2DAsync(out.data(), m.T * sizeof(float), m.y.get(), m.n * sizeof(float), m.T * sizeof(float),
                                  size_t(B) * m.n_filters, cudaMemcpyDeviceToHost, s));
  BSIM_CUDA_TRY(cudaStreamSynchronize(s));
}

namespace {
template <int MaxRadix, int LOG2_N>
void launch_fused_convolution(BatchConvolver::Impl& m, cudaStream_t s) {
  const FusedConvParams& p = m.cp;
  const int B = m.max_batch, pairs = m.n_filters / 2, threads = fused_conv_threads(p);
  const float2* tw = m.conv_twiddle.get();
  BSIM_LAUNCH((conv_input_spectra<MaxRadix, LOG2_N>), dim3(p.J2 / 2, B), threads, m.conv_smem, s)(
      m.x.get(), tw, p, m.conv_X.get());
  BSIM_LAUNCH((conv_filter_spectra<MaxRadix, LOG2_N>), dim3(p.Q, B * pairs), threads, m.conv_smem, s)(
      m.h.get(), tw, p, m.conv_H.get());
  BSIM_LAUNCH((conv_output_blocks<MaxRadix, LOG2_N>), dim3(p.J, B * pairs), threads, m.conv_smem, s)(
      m.conv_X.get(), m.conv_H.get(), tw, p, m.y.get());
  BSIM_CUDA_TRY(cudaGetLastError());
}

void compute(BatchConvolver::Impl& m) {
  cudaStream_t s = m.stream.get();
  if (m.fused) {
    if (conv_fixed_instance(m.cp)) {
      launch_fused_convolution<16, kConvFixedLog2N>(m, s);
    } else if (m.cp.max_radix == 16) {
      launch_fused_convolution<16, 0>(m, s);
    } else {
      launch_fused_convolution<8, 0>(m, s);
    }
    return;
  }
  BSIM_CUFFT_TRY(cufftExecR2C(m.fwd_x->get(), m.x.get(), m.X.get()));
  BSIM_CUFFT_TRY(cufftExecR2C(m.fwd_h->get(), m.h.get(), m.H.get()));
  const long long total = (long long)m.max_batch * m.n_filters * m.nb;
  BSIM_LAUNCH(multiply_spectra, blocks_for(total), kDspThreads, 0, s)(
      m.X.get(), m.H.get(), m.max_batch, m.n_filters, m.nb, 1.0f / float(m.n));
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_CUFFT_TRY(cufftExecC2R(m.inv->get(), m.H.get(), m.y.get()));
}
}  // namespace

void BatchConvolver::recompute() {
  compute(*impl_);
  BSIM_CUDA_TRY(cudaStreamSynchronize(impl_->stream.get()));
}

struct BatchTeacher::Impl {
  FeatureConfig cfg;
  TeacherKind kind;
  int max_batch, T, frames, nb, n_features;
  bool fused = false;  // kernels/teacher_fused.cuh; else framing + cuFFT + feature kernels
  FusedTeacherParams fp{};
  int fused_smem = 0, threads = 0;
  DeviceBuffer<float2> twiddle;
  DeviceBuffer<double> power_parts, power;  // the one-pass teacher's: per power block, per example
  DeviceBuffer<float> audio, window, frames_buf, r, out, eps;
  DeviceBuffer<cufftComplex> X, G;
  std::unique_ptr<FftPlan> fwd, inv;
  Stream stream;
};

namespace {
void compute(BatchTeacher::Impl& m, const float* audio, float* out, cudaStream_t s) {
  if (m.fused) {
    const dim3 grid((m.frames + m.fp.frames_per_block - 1) / m.fp.frames_per_block, m.max_batch);
    const int parts = fused_teacher_power_parts(m.fp);
    const dim3 power_grid(parts, m.max_batch);
    BSIM_LAUNCH(fused_teacher_power, power_grid, kTeacherThreads, fused_teacher_power_shared_bytes(m.fp), s)(
        audio, m.window.get(), m.fp, m.power_parts.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    BSIM_LAUNCH(fused_teacher_power_total, blocks_for(m.max_batch), kDspThreads, 0, s)(
        m.power_parts.get(), parts, m.max_batch, m.power.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    const FusedTeacherKernel fused_teacher_n = fused_teacher_kernel(m.fp.log2_n);
    BSIM_LAUNCH(fused_teacher_n, grid, m.threads, m.fused_smem, s)(
        audio, m.window.get(), m.twiddle.get(), m.power.get(), m.fp, out);
    BSIM_CUDA_TRY(cudaGetLastError());
    return;
  }
  for (auto* p : {m.fwd.get(), m.inv.get()}) BSIM_CUFFT_TRY(cufftSetStream(p->get(), s));
  const int B = m.max_batch;
  const long long nframe_samples = (long long)B * 2 * m.frames * m.cfg.n_fft;
  BSIM_LAUNCH(frame_signals, blocks_for(nframe_samples), kDspThreads, 0, s)(
      audio, m.window.get(), m.frames_buf.get(), B * 2, m.T, m.frames, m.cfg.n_fft, m.cfg.win_length, m.cfg.hop_length);
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_CUFFT_TRY(cufftExecR2C(m.fwd->get(), m.frames_buf.get(), m.X.get()));
  BSIM_LAUNCH(power_eps, B, kDspThreads, 0, s)(m.X.get(), m.eps.get(), 2LL * m.frames * m.nb);
  BSIM_CUDA_TRY(cudaGetLastError());
  const long long cells = (long long)B * m.frames * m.nb;
  if (m.kind == TeacherKind::gcc_phat) {
    BSIM_LAUNCH(phat_cross, blocks_for(cells), kDspThreads, 0, s)(m.X.get(), m.G.get(), B, m.frames, m.nb, m.eps.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    BSIM_CUFFT_TRY(cufftExecC2R(m.inv->get(), m.G.get(), m.r.get()));
    const long long n_out = (long long)B * m.n_features * m.frames;
    BSIM_LAUNCH(gather_lags, blocks_for(n_out), kDspThreads, 0, s)(
        m.r.get(), out, B, m.frames, m.cfg.n_fft, m.cfg.gcc_max_lag);
  } else {
    const bool ipd = m.kind == TeacherKind::ipd || m.kind == TeacherKind::ipd_ild;
    const bool ild = m.kind == TeacherKind::ild || m.kind == TeacherKind::ipd_ild;
    BSIM_LAUNCH(ipd_ild, blocks_for(cells), kDspThreads, 0, s)(
        m.X.get(), out, B, m.frames, m.nb, m.eps.get(), ipd, ild, m.n_features);
  }
  BSIM_CUDA_TRY(cudaGetLastError());
}
}  // namespace

void BatchTeacher::recompute() {
  compute(*impl_, impl_->audio.get(), impl_->out.get(), impl_->stream.get());
  BSIM_CUDA_TRY(cudaStreamSynchronize(impl_->stream.get()));
}

BatchTeacher::BatchTeacher(const FeatureConfig& cfg, int max_batch, int T, FusedTeacherLaunch launch)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = cfg, m.kind = teacher_kind(cfg.teacher), m.max_batch = max_batch, m.T = T;
  const FeatureShape shape = teacher_shape(cfg, T);
  m.frames = shape.n_frames, m.n_features = shape.n_features, m.nb = cfg.n_fft / 2 + 1;
  m.window = to_device(stft_window(cfg));
  m.audio = DeviceBuffer<float>(size_t(max_batch) * 2 * T);
  // Which implementation, by measurement (H200, bench/RESULTS.md): the one-pass kernel with the radix-8
  // shared-memory FFT, 2.45 us per 4 s example for GCC-PHAT and 2.72 for IPD/ILD, against 5.41 and 8.15 for
  // framing + cuFFT + feature kernels. BSIM_TEACHER_KERNEL=fused|cufft overrides (both are tested against the
  // CPU); n_fft must be a power of two in 16..1024 for the one-pass kernel, else framing + cuFFT it is.
  const int n = cfg.n_fft;
  const bool fusable = (n & (n - 1)) == 0 && n >= 16 && n <= 1024 && cfg.win_length <= n;
  m.fused = kernel_choice("BSIM_TEACHER_KERNEL", "fused") == "fused" && fusable;
  if (m.fused) {
    m.fp.T = T, m.fp.n_frames = m.frames, m.fp.n_fft = n, m.fp.win = cfg.win_length, m.fp.hop = cfg.hop_length;
    m.fp.log2_n = int(std::lround(std::log2(double(n))));
    m.fp.kind = int(m.kind), m.fp.max_lag = cfg.gcc_max_lag, m.fp.n_features = m.n_features;
    // 8 frames of up to 512 points per block of 256 threads: measured against 4 and 16 frames and 512 threads
    // (bench/RESULTS.md run 11, H200): 4 frames 0.9 % faster on GCC-PHAT, 8 % slower on IPD/ILD.
    m.fp.frames_per_block = launch.frames_per_block > 0 ? launch.frames_per_block : n <= 512 ? 8 : 4;
    m.threads = launch.threads > 0 ? launch.threads : kTeacherThreads;
    if (m.fp.frames_per_block % 2 != 0 || m.threads % 32 != 0 || m.threads > 1024)
      throw InputError("BatchTeacher: frames per block must be even and threads a multiple of 32 up to 1024");
    m.fused_smem = fused_teacher_shared_bytes(m.fp);
    const size_t limit = shared_opt_in_bytes();
    if (size_t(m.fused_smem) > limit)
      throw InputError("BatchTeacher: " + std::to_string(m.fp.frames_per_block) + " frames of " + std::to_string(n) +
                       " points per thread block need " + std::to_string(m.fused_smem / 1024) +
                       " KiB of shared memory, this device allows " + std::to_string(limit / 1024) +
                       " KiB: take fewer frames per block");
    allow_dynamic_shared((const void*)fused_teacher_kernel(m.fp.log2_n), m.fused_smem);
    m.twiddle = to_device(fft_twiddles(n, 8));
    m.power_parts = DeviceBuffer<double>(size_t(max_batch) * fused_teacher_power_parts(m.fp));
    m.power = DeviceBuffer<double>(size_t(max_batch));
    m.out = DeviceBuffer<float>(size_t(max_batch) * m.n_features * m.frames);
    return;
  }
  m.frames_buf = DeviceBuffer<float>(size_t(max_batch) * 2 * m.frames * cfg.n_fft);
  m.X = DeviceBuffer<cufftComplex>(size_t(max_batch) * 2 * m.frames * m.nb);
  m.G = DeviceBuffer<cufftComplex>(size_t(max_batch) * m.frames * m.nb);
  m.r = DeviceBuffer<float>(size_t(max_batch) * m.frames * cfg.n_fft);
  m.out = DeviceBuffer<float>(size_t(max_batch) * m.n_features * m.frames);
  m.eps = DeviceBuffer<float>(size_t(max_batch));
  m.fwd = std::make_unique<FftPlan>(cfg.n_fft, CUFFT_R2C, max_batch * 2 * m.frames, cfg.n_fft, m.nb);
  m.inv = std::make_unique<FftPlan>(cfg.n_fft, CUFFT_C2R, max_batch * m.frames, m.nb, cfg.n_fft);
}
BatchTeacher::~BatchTeacher() = default;
void BatchTeacher::enqueue_device(const float* audio, float* out, void* stream) {
  compute(*impl_, audio, out, static_cast<cudaStream_t>(stream));
}
int BatchTeacher::n_features() const { return impl_->n_features; }
int BatchTeacher::n_frames() const { return impl_->frames; }
bool BatchTeacher::fused() const { return impl_->fused; }

void BatchTeacher::run(int B, const std::vector<float>& audio, std::vector<float>& out) {
  Impl& m = *impl_;
  if (B != m.max_batch) throw InputError("BatchTeacher: plans are made for batches of " + std::to_string(m.max_batch));
  cudaStream_t s = m.stream.get();
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.audio.get(), audio.data(), size_t(B) * 2 * m.T * sizeof(float), cudaMemcpyHostToDevice, s));
  compute(m, m.audio.get(), m.out.get(), s);
  out.resize(size_t(B) * m.n_features * m.frames);
  BSIM_CUDA_TRY(cudaMemcpyAsync(out.data(), m.out.get(), out.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
  BSIM_CUDA_TRY(cudaStreamSynchronize(s));
}

}  // namespace bsim::cuda
