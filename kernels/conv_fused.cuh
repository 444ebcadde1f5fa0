// Uniformly partitioned overlap-save convolution with the FFTs in shared memory: out[b][f] = x[b] * h[b][f]
// for filters taken in pairs (f0, f1). Block length K, transforms of N = 2K points; output block j uses the
// input frame x[(j-1)K, (j+1)K) and filter partitions h_q = h[qK, (q+1)K):
//   Y_j = sum_q X_{j-q} H_q,  out[jK + n] = IFFT(Y_j)[K + n] / N,  n < K.
// Three kernels, each reading and writing global memory once: input frame spectra (two real frames per
// complex FFT), filter partition spectra (the pair's two filters per complex FFT), and multiply-accumulate
// + inverse FFT of the pair (Y_f0 + i Y_f1, whose real and imaginary parts are the two outputs) straight to
// the output. Device code only; runs on the CPU under kernels/emulation.h for the tests.
#pragma once
#include "kernels/emulation.h"
#include "kernels/smem_fft.cuh"

namespace bsim::cuda {

struct FusedConvParams {
  int T, L, F;        // samples per input, taps per filter, filters per example (even)
  int K, N, log2_N;   // block, transform size 2K
  int J, J2, Q;       // output blocks ceil(T/K), J rounded up to even, partitions ceil(L/K)
  int max_radix;      // of the shared-memory FFT passes: 8 or 16 (kernels/smem_fft.cuh); the kernels' MaxRadix
};

inline FusedConvParams fused_conv_params(int T, int L, int F, int K, int max_radix = 8) {
  FusedConvParams p{};
  p.T = T, p.L = L, p.F = F, p.K = K, p.N = 2 * K, p.max_radix = max_radix;
  int lg = 0;
  while ((1 << lg) < p.N) ++lg;
  p.log2_N = lg;
  p.J = (T + K - 1) / K, p.J2 = p.J + (p.J & 1), p.Q = (L + K - 1) / K;
  return p;
}
// Shared memory per block: two N-point transform buffers (kernels/smem_fft.cuh) and the twiddles.
inline int fused_conv_shared_bytes(const FusedConvParams& p) { return fft_workspace_bytes(p.N, 1); }

// The two real signals packed in transform z: their spectra (K + 1 bins each) to out[0][k] and out[1][k].
__device__ inline void store_two_spectra(const float2* z, const FusedConvParams& p, float2* out) {
  const int nb = p.K + 1;
  for (int k = threadIdx.x; k < nb; k += blockDim.x) {
    float2 s0, s1;
    split_two_real(z, p.N, k, s0, s1);
    out[k] = s0, out[nb + k] = s1;
  }
}

// X[b][j][k], k <= K: spectra of input frames j and j+1 (j even). Grid (J2 / 2, B).
template <int MaxRadix>
__global__ void conv_input_spectra(const float* x, const float2* twiddle, FusedConvParams p, float2* X) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const FftWorkspace w = fft_workspace(shared, p.N, 1, twiddle);
  const int b = blockIdx.y, j0 = 2 * blockIdx.x, nb = p.K + 1;
  const float* xb = x + (size_t)b * p.T;
  const int K = p.K, T = p.T;
  const auto frames = [=](int, int i) {  // frames j0 and j0 + 1 as one complex signal, read by the first pass
    const int s0 = (j0 - 1) * K + i, s1 = s0 + K;
    return make_float2(s0 >= 0 && s0 < T ? xb[s0] : 0.0f, s1 >= 0 && s1 < T ? xb[s1] : 0.0f);
  };
  const float2* z = smem_fft_load<MaxRadix>(frames, w.a, w.b, w.tw, p.log2_N, 1, false);
  store_two_spectra(z, p, X + ((size_t)b * p.J2 + j0) * nb);
}

// H[b][pair][q][ear][k]: spectra of partition q of the pair's two filters. Grid (Q, B * F / 2).
template <int MaxRadix>
__global__ void conv_filter_spectra(const float* h, const float2* twiddle, FusedConvParams p, float2* H) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const FftWorkspace w = fft_workspace(shared, p.N, 1, twiddle);
  const int q = blockIdx.x, bp = blockIdx.y, nb = p.K + 1;  // bp = b * F/2 + pair
  const float* h0 = h + (size_t)bp * 2 * p.L;               // filters 2 pair and 2 pair + 1 of example b
  const float* h1 = h0 + p.L;
  const int K = p.K, L = p.L;
  const auto partition = [=](int, int i) {  // partition q of both filters, zero-padded, read by the first pass
    const int s = q * K + i;
    const bool in = i < K && s < L;
    return make_float2(in ? h0[s] : 0.0f, in ? h1[s] : 0.0f);
  };
  const float2* z = smem_fft_load<MaxRadix>(partition, w.a, w.b, w.tw, p.log2_N, 1, false);
  store_two_spectra(z, p, H + ((size_t)bp * p.Q + q) * 2 * nb);
}

// out[b][f][jK + n] for the pair's two filters: multiply-accumulate over partitions, one inverse FFT of
// Y_f0 + i Y_f1, real part -> filter f0, imaginary part -> f1. Grid (J, B * F / 2).
template <int MaxRadix>
__global__ void conv_output_blocks(const float2* X, const float2* H, const float2* twiddle, FusedConvParams p,
                                   float* out) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const FftWorkspace w = fft_workspace(shared, p.N, 1, twiddle);
  const int j = blockIdx.x, bp = blockIdx.y, b = bp / (p.F / 2), nb = p.K + 1;
  const float2* Hb = H + (size_t)bp * p.Q * 2 * nb;
  const float2* Xb = X + (size_t)b * p.J2 * nb;
  for (int k = threadIdx.x; k < nb; k += blockDim.x) {
    float2 y0 = make_float2(0.0f, 0.0f), y1 = y0;
    for (int q = 0; q < p.Q && q <= j; ++q) {
      const float2 xv = Xb[(size_t)(j - q) * nb + k];
      const float2 u = cmul(xv, Hb[((size_t)q * 2 + 0) * nb + k]), v = cmul(xv, Hb[((size_t)q * 2 + 1) * nb + k]);
      y0.x += u.x, y0.y += u.y, y1.x += v.x, y1.y += v.y;
    }
    // Z_k = Y0_k + i Y1_k, and for the mirrored bin N-k: conj(Y0_k) + i conj(Y1_k).
    w.a[fft_slot(k)] = make_float2(y0.x - y1.y, y0.y + y1.x);
    if (k > 0 && k < p.K) w.a[fft_slot(p.N - k)] = make_float2(y0.x + y1.y, -y0.y + y1.x);
  }
  // The inverse transform's last pass writes the second half (the valid samples) straight to the output.
  const float scale = 1.0f / float(p.N);
  float* o0 = out + ((size_t)bp * 2) * p.T;  // filters 2 pair, 2 pair + 1 of example b
  float* o1 = o0 + p.T;
  const int K = p.K, T = p.T;
  const auto valid = [=](int, int i, float2 v) {
    const int t = j * K + i - K;
    if (i < K || t >= T) return;
    o0[t] = v.x * scale, o1[t] = v.y * scale;
  };
  smem_fft_io<MaxRadix>(SharedLoad{w.a, fft_stride(p.N)}, valid, w.b, w.a, w.tw, p.log2_N, 1, true);
}

}  // namespace bsim::cuda
