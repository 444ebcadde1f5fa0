// The kernels between the cuFFT transforms of BatchConvolver's and BatchTeacher's full-length paths
// (BSIM_CONV_KERNEL=cufft, BSIM_TEACHER_KERNEL=cufft): spectra products, STFT framing, the noise floor eps, PHAT
// cross-spectra and their lags, IPD/ILD. Launched by kernels/batch_dsp.cu; device code only, and it runs on the
// CPU under kernels/emulation.h for the tests (tests/test_kernel_emulation.cpp).
#pragma once
#include "kernels/emulation.h"  // first: the CUDA keywords when compiled as C++

namespace bsim::cuda {

constexpr int kDspThreads = 256;  // per block in every launch of these kernels (power_eps's scratch)

// Y[b][f][k] = X[b][k] * H[b][f][k] / n  (bins k = 0..nb-1)
__global__ void multiply_spectra(const float2* X, float2* H, int batch, int n_filters, int nb, float scale) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = (long long)batch * n_filters * nb;
  if (i >= total) return;
  const int k = int(i % nb);
  const long long bf = i / nb;
  const int b = int(bf / n_filters);
  const float2 x = X[(long long)b * nb + k], h = H[i];
  H[i] = make_float2((x.x * h.x - x.y * h.y) * scale, (x.x * h.y + x.y * h.x) * scale);
}

// frames[b][ch][t][0..n_fft) = window * audio[b][ch][t*hop + i] (zero-padded after win_length)
__global__ void frame_signals(const float* audio, const float* window, float* frames, int bc, int T, int n_frames,
                              int n_fft, int win, int hop) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = (long long)bc * n_frames * n_fft;
  if (i >= total) return;
  const int s = int(i % n_fft);
  const long long rest = i / n_fft;
  const int t = int(rest % n_frames);
  const long long c = rest / n_frames;
  frames[i] = s < win ? audio[c * T + (long long)t * hop + s] * window[s] : 0.0f;
}

// The two ears' STFT values of flat index i over [b][t][k] (X layout [b][ear][t][k]).
struct BinPair {
  float2 l, r;
  int b, t, k;
};
__device__ inline BinPair bin_pair(const float2* X, long long i, int n_frames, int nb) {
  BinPair p;
  p.k = int(i % nb);
  const long long bt = i / nb;
  p.t = int(bt % n_frames), p.b = int(bt / n_frames);
  p.l = X[(((long long)p.b * 2 + 0) * n_frames + p.t) * nb + p.k];
  p.r = X[(((long long)p.b * 2 + 1) * n_frames + p.t) * nb + p.k];
  return p;
}

// PHAT cross-spectra G[b][t][k] = XL conj(XR) / max(|.|, eps); X layout [b][ch][t][k].
__global__ void phat_cross(const float2* X, float2* G, int batch, int n_frames, int nb, const float* eps) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = (long long)batch * n_frames * nb;
  if (i >= total) return;
  const BinPair p = bin_pair(X, i, n_frames, nb);
  const float2 l = p.l, r = p.r;
  const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;
  const float a = fmaxf(sqrtf(gx * gx + gy * gy), eps[p.b]);
  G[i] = make_float2(gx / a, gy / a);
}

// out[b][lag + L][t] = r[b][t][(lag + n) % n] / n
__global__ void gather_lags(const float* r, float* out, int batch, int n_frames, int n_fft, int max_lag) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const int n_lags = 2 * max_lag + 1;
  const long long total = (long long)batch * n_lags * n_frames;
  if (i >= total) return;
  const int t = int(i % n_frames);
  const long long bl = i / n_frames;
  const int lag = int(bl % n_lags) - max_lag, b = int(bl / n_lags);
  out[i] = r[((long long)b * n_frames + t) * n_fft + (lag + n_fft) % n_fft] / float(n_fft);
}

// IPD (cos rows then sin rows) and/or ILD rows: out[b][row][t]
__global__ void ipd_ild(const float2* X, float* out, int batch, int n_frames, int nb, const float* eps, int ipd,
                        int ild, int n_features) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long total = (long long)batch * n_frames * nb;
  if (i >= total) return;
  const BinPair p = bin_pair(X, i, n_frames, nb);
  const float2 l = p.l, r = p.r;
  const int b = p.b, t = p.t, k = p.k;
  float* o = out + (long long)b * n_features * n_frames;
  if (ipd) {  // L conj(R) / max(|L conj(R)|, eps), as the CPU (sim/features.h)
    const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;
    const float inv = 1.0f / fmaxf(sqrtf(gx * gx + gy * gy), eps[b]);
    o[(long long)k * n_frames + t] = gx * inv;
    o[(long long)(nb + k) * n_frames + t] = gy * inv;
  }
  if (ild) {
    const int row0 = ipd ? 2 * nb : 0;
    const float pl = l.x * l.x + l.y * l.y, pr = r.x * r.x + r.y * r.y;
    o[(long long)(row0 + k) * n_frames + t] = 10.0f * log10f((pl + eps[b]) / (pr + eps[b]));
  }
}

// eps[b] = 1e-10 * mean |X|^2 over both ears, frames and bins + 1e-30 (as on the CPU). One block per example.
__global__ void power_eps(const float2* X, float* eps, long long per_example) {
  BSIM_SHARED(double, part, [kDspThreads]);
  const float2* x = X + blockIdx.x * per_example;
  double s = 0;
  for (long long i = threadIdx.x; i < per_example; i += blockDim.x) s += double(x[i].x) * x[i].x + double(x[i].y) * x[i].y;
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) eps[blockIdx.x] = float(1e-10 * part[0] / double(per_example) + 1e-30);
}

}  // namespace bsim::cuda
