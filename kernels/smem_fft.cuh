// FFTs in shared memory done by all threads of a block: Stockham autosort passes of radix 8 (one radix-2 or
// radix-4 pass first where log2 n is not a multiple of 3), each thread holding one radix-R butterfly in
// registers, ping-ponging between two buffers. A 512-point transform is three passes, so every value crosses
// shared memory three times instead of the nine of radix-2, with one barrier per pass. Strided loops, so the
// code also runs sequentially under kernels/emulation.h. Device code only.
//
// Layout: value i of a transform lives at fft_slot(i), an XOR swizzle of the low four bits by the next four,
// and transforms follow each other every fft_stride(n) float2. A float2 access by half a warp is conflict-free
// when its 16 slots fall in 16 different bank pairs (slot mod 16): the swizzle gives that for the passes'
// contiguous loads and their stride-8 and stride-64 stores (1.05x the conflict-free count of shared-memory
// wavefronts over a 512-point transform, where padding one slot in 8 gave 1.7x), and the stride of n + 2
// staggers transforms so that loops over (bin, frame) with the frame fastest read from 8 transforms at once
// without conflicts.
#pragma once
#include <cmath>
#include <vector>

#include "kernels/emulation.h"

namespace bsim::cuda {

// Host side: the twiddle table the transforms read, tw[m] = exp(-2 pi i m / n) for m < count (computed in
// double, stored in float). The transforms read m < n / 8.
inline std::vector<float2> fft_twiddles(int n, int count) {
  std::vector<float2> tw(static_cast<size_t>(count));
  for (int m = 0; m < count; ++m)
    tw[size_t(m)] = make_float2(float(std::cos(2.0 * M_PI * m / n)), float(-std::sin(2.0 * M_PI * m / n)));
  return tw;
}

__host__ __device__ __forceinline__ int fft_slot(int i) { return i ^ ((i >> 3) & 15); }
__host__ __device__ __forceinline__ int fft_stride(int n) { return n + 2; }

__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float2 cadd(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float2 csub(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }
__device__ __forceinline__ float2 times_minus_i(float2 a) { return make_float2(a.y, -a.x); }

// In-register DFTs, forward (exp(-2 pi i k m / R)), natural order in and out.
__device__ __forceinline__ void dft2(float2* v) {
  const float2 a = v[0], b = v[1];
  v[0] = cadd(a, b), v[1] = csub(a, b);
}
__device__ __forceinline__ void dft4(float2& v0, float2& v1, float2& v2, float2& v3) {
  const float2 t0 = cadd(v0, v2), t1 = csub(v0, v2), t2 = cadd(v1, v3), t3 = times_minus_i(csub(v1, v3));
  v0 = cadd(t0, t2), v2 = csub(t0, t2), v1 = cadd(t1, t3), v3 = csub(t1, t3);
}
__device__ __forceinline__ void dft8(float2* v) {
  // Even and odd samples as two 4-point DFTs, then X_k = E_k + W^k O_k, X_{k+4} = E_k - W^k O_k, W = e^{-i pi/4}.
  float2 e0 = v[0], e1 = v[2], e2 = v[4], e3 = v[6], o0 = v[1], o1 = v[3], o2 = v[5], o3 = v[7];
  dft4(e0, e1, e2, e3);
  dft4(o0, o1, o2, o3);
  const float s = 0.70710678118654752f;
  o1 = make_float2(s * (o1.x + o1.y), s * (o1.y - o1.x));    // times (s, -s)
  o2 = times_minus_i(o2);                                     // times -i
  o3 = make_float2(s * (o3.y - o3.x), -s * (o3.x + o3.y));   // times (-s, -s)
  v[0] = cadd(e0, o0), v[4] = csub(e0, o0);
  v[1] = cadd(e1, o1), v[5] = csub(e1, o1);
  v[2] = cadd(e2, o2), v[6] = csub(e2, o2);
  v[3] = cadd(e3, o3), v[7] = csub(e3, o3);
}

// One Stockham pass of radix R = 2^log2_r over `count` transforms: thread item j (< n/R) reads in[j + r n/R],
// applies the twiddles exp(-2 pi i (j mod ns) r / (ns R)), does the R-point DFT and writes
// out[(j - j mod ns) R + j mod ns + r ns]; ns is the product of the earlier passes' radices.
template <int R>
__device__ inline void fft_pass(const float2* in, float2* out, const float2* tw, int log2_n, int log2_ns, int count,
                                bool conj_in, bool conj_out) {
  constexpr int log2_r = R == 8 ? 3 : R == 4 ? 2 : 1;
  const int log2_per = log2_n - log2_r, per = 1 << log2_per, ns_mask = (1 << log2_ns) - 1;
  const int stride = fft_stride(1 << log2_n), tw_shift = log2_n - log2_ns - log2_r;
  for (int item = threadIdx.x; item < (count << log2_per); item += blockDim.x) {
    const int c = item >> log2_per, j = item & (per - 1), k = j & ns_mask;
    const float2* src = in + c * stride;
    float2* dst = out + c * stride;
    float2 v[R];
BSIM_UNROLL
    for (int r = 0; r < R; ++r) {
      v[r] = src[fft_slot(j + (r << log2_per))];
      if (conj_in) v[r].y = -v[r].y;
    }
    if (k != 0) {
      const float2 w = tw[k << tw_shift];
      float2 wr = w;
BSIM_UNROLL
      for (int r = 1; r < R; ++r) v[r] = cmul(v[r], wr), wr = cmul(wr, w);
    }
    if constexpr (R == 8) dft8(v);
    if constexpr (R == 4) dft4(v[0], v[1], v[2], v[3]);
    if constexpr (R == 2) dft2(v);
    const int d = ((j - k) << log2_r) + k;
BSIM_UNROLL
    for (int r = 0; r < R; ++r) {
      float2 o = v[r];
      if (conj_out) o.y = -o.y;
      dst[fft_slot(d + (r << log2_ns))] = o;
    }
  }
}

// `count` transforms of n = 2^log2_n points (n >= 8), natural order in buffer a (layout above); b is scratch of
// the same size. Forward X_k = sum x_m exp(-2 pi i k m / n), or with `inverse` the unnormalised sum with
// exp(+...) (computed as conj(FFT(conj x))). tw: fft_twiddles(n, >= n / 8). Returns the buffer that holds the
// result (a or b), natural order. Starts and ends with a barrier.
__device__ inline float2* smem_fft(float2* a, float2* b, const float2* tw, int log2_n, int count, bool inverse) {
  __syncthreads();
  float2* in = a;
  float2* out = b;
  int log2_ns = 0;
  const int first = log2_n % 3;  // a radix-2 or radix-4 pass first where log2 n is not a multiple of 3
  const int passes = (log2_n - first) / 3 + (first ? 1 : 0);
  for (int pass = 0; pass < passes; ++pass) {
    const bool conj_in = inverse && pass == 0, conj_out = inverse && pass == passes - 1;
    const int log2_r = pass == 0 && first ? first : 3;
    if (log2_r == 3) fft_pass<8>(in, out, tw, log2_n, log2_ns, count, conj_in, conj_out);
    if (log2_r == 2) fft_pass<4>(in, out, tw, log2_n, log2_ns, count, conj_in, conj_out);
    if (log2_r == 1) fft_pass<2>(in, out, tw, log2_n, log2_ns, count, conj_in, conj_out);
    __syncthreads();
    float2* t = in;
    in = out, out = t;
    log2_ns += log2_r;
  }
  return in;
}

// Two real signals a, b transformed as one complex signal z = a + i b (padded layout): their spectra at bin k
// (0..n/2).
__device__ __forceinline__ void split_two_real(const float2* z, int n, int k, float2& a, float2& b) {
  const float2 zk = z[fft_slot(k)], zc = z[fft_slot((n - k) & (n - 1))];
  a = make_float2(0.5f * (zk.x + zc.x), 0.5f * (zk.y - zc.y));
  b = make_float2(0.5f * (zk.y + zc.y), -0.5f * (zk.x - zc.x));
}

// Frames t0 .. t0+F-1 of a binaural pair as the STFT of sim/features.h takes them (samples [t hop, t hop + win)
// times the window, zero-padded to n), both ears as one complex signal (left + i right) per frame, written to
// a[F][fft_stride(n)] and transformed (b is scratch of the same size). Returns the buffer holding
// Z_k = L_k + i R_k (split_two_real gives the ears). Frames past n_frames are zero.
__device__ inline float2* stft_pair_frames(const float* left, const float* right, const float* window,
                                           const float2* tw, int n, int log2_n, int win, int hop, int n_frames,
                                           int t0, int F, float2* a, float2* b) {
  const int stride = fft_stride(n);
  for (int idx = threadIdx.x; idx < F * n; idx += blockDim.x) {
    const int f = idx >> log2_n, i = idx & (n - 1), t = t0 + f;
    float2 v = make_float2(0.0f, 0.0f);
    if (t < n_frames && i < win) {
      const float w = window[i];
      v = make_float2(left[(size_t)t * hop + i] * w, right[(size_t)t * hop + i] * w);
    }
    a[f * stride + fft_slot(i)] = v;
  }
  return smem_fft(a, b, tw, log2_n, F, false);
}

}  // namespace bsim::cuda
