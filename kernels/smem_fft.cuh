// Radix-2 FFTs in shared memory, done by all threads of a block (strided loops and barriers, so the code
// also runs sequentially under kernels/emulation.h). Device code only.
#pragma once
#include <cmath>
#include <vector>

#include "kernels/emulation.h"

namespace bsim::cuda {

// Host side: the twiddle table the transforms read, tw[m] = exp(-2 pi i m / n) for m < count (computed in
// double, stored in float).
inline std::vector<float2> fft_twiddles(int n, int count) {
  std::vector<float2> tw(static_cast<size_t>(count));
  for (int m = 0; m < count; ++m)
    tw[size_t(m)] = make_float2(float(std::cos(2.0 * M_PI * m / n)), float(-std::sin(2.0 * M_PI * m / n)));
  return tw;
}

__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// Index i of an n-point transform (n = 2^log2_n) in bit-reversed order: where input sample i is stored.
__device__ __forceinline__ int bit_reversed(int i, int log2_n) { return int(__brev(unsigned(i)) >> (32 - log2_n)); }

// `count` transforms of n = 2^log2_n points, z[c * n + i], stored in bit-reversed order, are transformed in
// place: forward X_k = sum x_m exp(-2 pi i k m / n), or with `inverse` the unnormalised sum with exp(+...).
// tw[m] = exp(-2 pi i m / n) for m < n/2. Index maps use shifts and masks (every size is a power of two).
// Starts and ends with a barrier.
__device__ inline void smem_fft(float2* z, const float2* tw, int log2_n, int count, bool inverse) {
  __syncthreads();
  const int lh = log2_n - 1, half_mask = (1 << lh) - 1;  // butterflies per transform: 2^lh
  for (int s = 0; s < log2_n; ++s) {
    const int half = 1 << s, tw_shift = lh - s;  // twiddle stride n / (2 half)
    for (int j = threadIdx.x; j < (count << lh); j += blockDim.x) {
      const int c = j >> lh, q = j & half_mask, pos = q & (half - 1), grp = q >> s;
      const int i0 = (c << log2_n) + (grp << (s + 1)) + pos, i1 = i0 + half;
      float2 w = tw[pos << tw_shift];
      if (inverse) w.y = -w.y;
      const float2 a = z[i0], b = cmul(z[i1], w);
      z[i0] = make_float2(a.x + b.x, a.y + b.y);
      z[i1] = make_float2(a.x - b.x, a.y - b.y);
    }
    __syncthreads();
  }
}

// Two real signals a, b transformed as one complex signal z = a + i b: their spectra at bin k (0..n/2).
__device__ __forceinline__ void split_two_real(const float2* z, int n, int k, float2& a, float2& b) {
  const float2 zk = z[k], zc = z[(n - k) % n];
  a = make_float2(0.5f * (zk.x + zc.x), 0.5f * (zk.y - zc.y));
  b = make_float2(0.5f * (zk.y + zc.y), -0.5f * (zk.x - zc.x));
}

// Frames t0 .. t0+F-1 of a binaural pair as the STFT of sim/features.h takes them (samples [t hop, t hop + win)
// times the window, zero-padded to n), both ears as one complex signal (left + i right) per frame, into z[F][n]
// and transformed: z then holds Z_k = L_k + i R_k (split_two_real gives the ears). Frames past n_frames are zero.
__device__ inline void stft_pair_frames(const float* left, const float* right, const float* window, const float2* tw,
                                        int n, int log2_n, int win, int hop, int n_frames, int t0, int F, float2* z) {
  for (int idx = threadIdx.x; idx < F * n; idx += blockDim.x) {
    const int f = idx / n, i = idx % n, t = t0 + f;
    float2 v = make_float2(0.0f, 0.0f);
    if (t < n_frames && i < win) {
      const float w = window[i];
      v = make_float2(left[(size_t)t * hop + i] * w, right[(size_t)t * hop + i] * w);
    }
    z[f * n + bit_reversed(i, log2_n)] = v;
  }
  smem_fft(z, tw, log2_n, F, false);
}

}  // namespace bsim::cuda
