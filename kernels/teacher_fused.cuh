// Teacher features in one pass over the audio (sim/features.h defines them; the CPU is the reference):
// a block takes `frames_per_block` consecutive frames of one example, windows both ears into one complex
// signal per frame (left + i right), runs a radix-2 FFT of n_fft points in shared memory, separates the two
// ears' spectra and writes GCC-PHAT lags (a direct inverse DFT of only the lags kept) or IPD/ILD rows.
// Nothing between the audio and the features goes through global memory, unlike framing + cuFFT + feature
// kernels, which move ~6 MB per 4 s example.
// eps (1e-10 x the mean |X|^2 over both ears, frames and bins) comes from a first, cheap kernel using
// Parseval per frame: sum_{k<=n/2} |X_k|^2 = (n sum x^2 + X_0^2 + X_{n/2}^2) / 2 for a real frame x.
// Device code only; compiles as plain C++ under kernels/emulation.h for the CPU tests.
#pragma once
#include "kernels/emulation.h"
#include "kernels/smem_fft.cuh"

namespace bsim::cuda {

struct FusedTeacherParams {
  int T, n_frames, n_fft, log2_n, win, hop;
  int kind;  // 0 gcc_phat, 1 ipd, 2 ild, 3 ipd_ild
  int max_lag, n_features, frames_per_block;
};

// Shared memory a block of the fused kernel needs (bytes).
inline int fused_teacher_shared_bytes(const FusedTeacherParams& p) {
  const int nb = p.n_fft / 2 + 1;
  return int(sizeof(float2)) * (p.frames_per_block * p.n_fft + p.frames_per_block * nb + p.n_fft);
}

// power[b] += sum over both ears and this block's frames of sum_k |X_k|^2 (power zeroed before).
// Grid (ceil(n_frames / frames_per_block), B).
__global__ void fused_teacher_power(const float* audio, const float* window, FusedTeacherParams p, double* power) {
  const int b = blockIdx.y, t0 = blockIdx.x * p.frames_per_block;
  const float* x0 = audio + (size_t)b * 2 * p.T;
  double acc = 0;
  for (int j = threadIdx.x; j < 2 * p.frames_per_block; j += blockDim.x) {
    const int t = t0 + j / 2, ear = j % 2;
    if (t >= p.n_frames) continue;
    const float* x = x0 + (size_t)ear * p.T + (size_t)t * p.hop;
    double s2 = 0, s0 = 0, s1 = 0;
    for (int i = 0; i < p.win; ++i) {
      const double v = double(x[i] * window[i]);
      s2 += v * v, s0 += v, s1 += (i & 1) ? -v : v;
    }
    acc += 0.5 * (double(p.n_fft) * s2 + s0 * s0 + s1 * s1);
  }
  atomicAdd(power + b, acc);  // a few hundred adds per example: no block reduction needed
}

// twiddle[m] = exp(-2 pi i m / n_fft), m < n_fft (computed in double on the host).
// Grid (ceil(n_frames / frames_per_block), B); dynamic shared memory fused_teacher_shared_bytes(p).
__global__ void fused_teacher(const float* audio, const float* window, const float2* twiddle, const double* power,
                              FusedTeacherParams p, float* out) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const int n = p.n_fft, half_n = n / 2, nb = half_n + 1, F = p.frames_per_block;
  float2* z = shared;           // [F][n]
  float2* g = z + F * n;        // [F][nb]
  float2* tw = g + F * nb;      // [n]
  const int b = blockIdx.y, t0 = blockIdx.x * F;
  const float* left = audio + (size_t)b * 2 * p.T;
  const float* right = left + p.T;
  for (int i = threadIdx.x; i < n; i += blockDim.x) tw[i] = twiddle[i];
  stft_pair_frames(left, right, window, tw, n, p.log2_n, p.win, p.hop, p.n_frames, t0, F, z);
  const double eps_d = 1e-10 * power[b] / (2.0 * double(p.n_frames) * nb) + 1e-30;
  const float eps = float(eps_d);
  // Z_k = L_k + i R_k  =>  L_k = (Z_k + conj Z_{n-k}) / 2,  R_k = (Z_k - conj Z_{n-k}) / (2i).
  for (int idx = threadIdx.x; idx < F * nb; idx += blockDim.x) {
    const int f = idx / nb, k = idx % nb, t = t0 + f;
    float2 l, r;
    split_two_real(z + f * n, n, k, l, r);
    const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;  // L conj(R)
    if (p.kind == 0) {
      const float a = float(fmax(double(sqrtf(gx * gx + gy * gy)), eps_d));
      g[f * nb + k] = make_float2(gx / a, gy / a);
      continue;
    }
    if (t >= p.n_frames) continue;
    float* o = out + (size_t)b * p.n_features * p.n_frames + t;
    if (p.kind == 1 || p.kind == 3) {
      const float phase = atan2f(gy, gx);
      o[(size_t)k * p.n_frames] = cosf(phase);
      o[(size_t)(nb + k) * p.n_frames] = sinf(phase);
    }
    if (p.kind == 2 || p.kind == 3) {
      const int row = p.kind == 3 ? 2 * nb + k : k;
      o[(size_t)row * p.n_frames] = 10.0f * log10f((l.x * l.x + l.y * l.y + eps) / (r.x * r.x + r.y * r.y + eps));
    }
  }
  if (p.kind != 0) return;  // uniform across the block
  __syncthreads();
  // GCC-PHAT: r[lag] = (1/n) (G_0 + (-1)^lag G_{n/2} + 2 sum_{k=1}^{n/2-1} Re(G_k e^{+2 pi i k lag / n})).
  const int n_lags = 2 * p.max_lag + 1;
  for (int idx = threadIdx.x; idx < F * n_lags; idx += blockDim.x) {
    const int f = idx / n_lags, li = idx % n_lags, lag = li - p.max_lag, t = t0 + f;
    if (t >= p.n_frames) continue;
    const float2* G = g + f * nb;
    float s = 0.0f;
    for (int k = 1; k < half_n; ++k) {
      const int m = (k * lag) & (n - 1);  // k lag mod n (n a power of two; also for negative lags)
      const float2 e = tw[m];  // exp(-2 pi i m / n): cos = e.x, sin(+angle) = -e.y
      s += G[k].x * e.x + G[k].y * e.y;
    }
    const float edge = G[0].x + ((lag & 1) ? -G[half_n].x : G[half_n].x);
    out[((size_t)b * p.n_features + li) * p.n_frames + t] = (edge + 2.0f * s) / float(n);
  }
}

}  // namespace bsim::cuda
