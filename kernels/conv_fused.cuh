// Uniformly partitioned overlap-save convolution with the FFTs in shared memory: out[b][f] = x[b] * h[b][f]
// for filters taken in pairs (f0, f1). Block length K, transforms of N = 2K points; output block j uses the
// input frame x[(j-1)K, (j+1)K) and filter partitions h_q = h[qK, (q+1)K):
//   Y_j = sum_q X_{j-q} H_q,  out[jK + n] = IFFT(Y_j)[K + n] / N,  n < K.
// Three kernels, each reading and writing global memory once: input frame spectra (two real frames per
// complex FFT), filter partition spectra (the pair's two filters per complex FFT), and multiply-accumulate
// + inverse FFT of the pair (Y_f0 + i Y_f1, whose real and imaginary parts are the two outputs) straight to
// the output. Device code only; runs on the CPU under kernels/emulation.h for the tests.
#pragma once
#include <algorithm>

#include "kernels/emulation.h"
#include "kernels/smem_fft.cuh"

namespace bsim::cuda {

// One pair of filters in a row-addressed convolution (the GPU pipeline): filter rows `filter` and `filter + 1`,
// which also receive the two outputs (in place: the filters' spectra are taken before any output is written),
// convolved with input row `input`, using the filters' first `partitions` partitions (the rest are zero).
struct ConvPair {
  int input, filter, partitions;
};

struct FusedConvParams {
  int T, L, F;        // samples per input, taps per filter, filters per example (even)
  int K, N, log2_N;   // block, transform size 2K
  int J, J2, Q;       // output blocks ceil(T/K), input frames held (even), partitions ceil(L/K)
  // Spectra rows (K + 1 bins each) start every `bins` float2: K + 1 rounded up to a multiple of 4, so that rows start
  // on 32-byte sectors and a warp's 32 bins read 8 sectors, not 9 (run 8's report of conv_output_blocks: 29.3 of 32
  // bytes used per sector, the rows 2,049 float2 apart).
  int bins;
  int first_frame;    // 0, or -1 with x_wrap: input frame j covers samples [(j - 1) K, (j + 1) K)
  int max_radix;      // of the shared-memory FFT passes: 8 or 16 (kernels/smem_fft.cuh); the kernels' MaxRadix
  // Where rows start: input b at x + b x_stride, filter f at h + f h_stride, output f at out + f out_stride.
  long long x_stride, h_stride, out_stride;
  // > 0: an input's samples at negative times -K <= s < 0 are read at x_wrap + s of its row (a circular row of
  // that length, whose end holds the pre-ringing of a zero-phase filter applied to it), earlier ones are zero;
  // 0: every negative time is zero. Set it with conv_read_negative_times, which also holds the extra input
  // frame (-1) that those samples need.
  int x_wrap;
  // nullptr: the dense layout of BatchConvolver (example b's pairs are b F/2 .. (b + 1) F/2 - 1, pair p takes
  // filters 2p and 2p + 1 and every partition); else the pairs' rows, one ConvPair per pair (device memory).
  const ConvPair* pairs;
};

inline FusedConvParams fused_conv_params(int T, int L, int F, int K, int max_radix = 8) {
  FusedConvParams p{};
  p.T = T, p.L = L, p.F = F, p.K = K, p.N = 2 * K, p.max_radix = max_radix;
  p.x_stride = T, p.h_stride = L, p.out_stride = T, p.x_wrap = 0, p.pairs = nullptr, p.first_frame = 0;
  int lg = 0;
  while ((1 << lg) < p.N) ++lg;
  p.log2_N = lg;
  p.J = (T + K - 1) / K, p.J2 = p.J + (p.J & 1), p.Q = (L + K - 1) / K;
  p.bins = (K + 1 + 3) & ~3;
  return p;
}
inline void conv_read_negative_times(FusedConvParams& p, int row_length) {
  p.x_wrap = row_length, p.first_frame = -1;
  const int frames = p.J + 1;
  p.J2 = frames + (frames & 1);
}
// Threads per block of the three kernels: one butterfly per thread and pass (N / radix), within 256..1024.
inline int fused_conv_threads(const FusedConvParams& p) {
  const int radix = 1 << fft_plan(p.log2_N, p.max_radix).log2_r;
  return std::min(1024, std::max(256, p.N / radix));
}
// The transform size the kernels take as a compile-time constant (blocks of 2,048: the default of BatchConvolver
// and the pipeline's; their passes cost ~27 % fewer instructions, kernels/smem_fft.cuh), else 0 (any size).
constexpr int kConvFixedLog2N = 12;
// Whether the kernels' fixed-size instance <16, kConvFixedLog2N> runs p (the hosts launch it then). Its transforms go
// in place in one buffer (smem_fft_in_place): fused_conv_threads gives it one butterfly per thread and pass.
inline bool conv_fixed_instance(const FusedConvParams& p) { return p.log2_N == kConvFixedLog2N && p.max_radix == 16; }
static_assert(fft_in_place_threads<kConvFixedLog2N, 16>(1) <= 256, "the fixed instance's passes fit 256 threads");
// Shared memory per block: the N-point transform buffers (one in place, else two) and the twiddles.
inline int fused_conv_shared_bytes(const FusedConvParams& p) {
  return fft_workspace_bytes(p.N, 1, conv_fixed_instance(p) ? 1 : 2);
}
// A kernel instance's workspace and transforms: in place for the fixed size, ping-pong between two buffers else.
template <int LOG2_N>
__device__ inline FftWorkspace conv_workspace(float2* shared, const FusedConvParams& p, const float2* twiddle) {
  return fft_workspace(shared, p.N, 1, twiddle, LOG2_N > 0 ? 1 : 2);
}
template <int MaxRadix, int LOG2_N, typename Load, typename Store>
__device__ inline void conv_fft(Load load, Store store, const FftWorkspace& w, const FusedConvParams& p, bool inverse) {
  if constexpr (LOG2_N > 0) {
    smem_fft_in_place<MaxRadix, LOG2_N>(load, store, w.a, w.tw, 1, inverse);
  } else {
    smem_fft_io<MaxRadix>(load, store, w.b, w.a, w.tw, p.log2_N, 1, inverse);
  }
}
// Forward transform of load's values, the result in natural order in the returned buffer.
template <int MaxRadix, int LOG2_N, typename Load>
__device__ inline float2* conv_fft_load(Load load, const FftWorkspace& w, const FusedConvParams& p) {
  if constexpr (LOG2_N > 0) {
    smem_fft_in_place<MaxRadix, LOG2_N>(load, SharedStore{w.a, fft_stride(p.N)}, w.a, w.tw, 1, false);
    return w.a;
  } else {
    return smem_fft_load<MaxRadix>(load, w.a, w.b, w.tw, p.log2_N, 1, false);
  }
}

// The two real signals packed in transform z: their spectra (K + 1 bins each) to rows out and out + p.bins.
__device__ inline void store_two_spectra(const float2* z, const FusedConvParams& p, float2* out) {
  for (int k = threadIdx.x; k <= p.K; k += blockDim.x) {
    float2 s0, s1;
    split_two_real(z, p.N, k, s0, s1);
    out[k] = s0, out[p.bins + k] = s1;
  }
}

// The pair's input row, first filter row and partitions in use.
__device__ inline void conv_pair(const FusedConvParams& p, int bp, int& input, int& filter, int& partitions) {
  if (p.pairs) {
    const ConvPair c = p.pairs[bp];
    input = c.input, filter = c.filter, partitions = c.partitions;
  } else {
    input = bp / (p.F / 2), filter = 2 * bp, partitions = p.Q;
  }
}

// X[b][j - first_frame][k], k <= K (rows p.bins apart): spectra of input frames j and j+1 (j - first_frame even).
// Grid (J2 / 2, inputs).
template <int MaxRadix, int LOG2_N = 0>  // LOG2_N > 0: the transform size fixed at compile time
__global__ void conv_input_spectra(const float* x, const float2* twiddle, FusedConvParams p, float2* X) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const FftWorkspace w = conv_workspace<LOG2_N>(shared, p, twiddle);
  const int b = blockIdx.y, slot = 2 * blockIdx.x, j0 = slot + p.first_frame;
  const float* xb = x + (size_t)b * p.x_stride;
  const int K = p.K, T = p.T, wrap = p.x_wrap;
  // One compare and one predicated load per sample, with the row's wrap or without it (a uniform branch, two
  // first passes). One reader for both (67c3a11) had ptxas emit three loads per sample and twice the first pass's
  // code: the likely cause of BM_ConvolveBatch's 1.89 -> 2.25 us per example (H100, runs 7 and 9).
  const auto plain = [=](int s) { return unsigned(s) < unsigned(T) ? xb[s] : 0.0f; };
  const auto wrapped = [=](int s) {  // -K <= s < 0 from the row's end
    return unsigned(s + K) < unsigned(T + K) ? xb[s < 0 ? wrap + s : s] : 0.0f;
  };
  const auto frames = [=](auto sample) {  // frames j0 and j0 + 1 as one complex signal, read by the first pass
    return [=](int, int i) {
      const int s0 = (j0 - 1) * K + i;
      return make_float2(sample(s0), sample(s0 + K));
    };
  };
  const float2* z = wrap > 0 ? conv_fft_load<MaxRadix, LOG2_N>(frames(wrapped), w, p)
                             : conv_fft_load<MaxRadix, LOG2_N>(frames(plain), w, p);
  store_two_spectra(z, p, X + ((size_t)b * p.J2 + slot) * p.bins);
}

// H[pair][q][ear][k] (rows p.bins apart): spectra of partition q of the pair's two filters. Grid (Q, pairs).
template <int MaxRadix, int LOG2_N = 0>  // LOG2_N > 0: the transform size fixed at compile time
__global__ void conv_filter_spectra(const float* h, const float2* twiddle, FusedConvParams p, float2* H) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const int q = blockIdx.x, bp = blockIdx.y;  // dense: bp = b * F/2 + pair of example b
  int input, filter, partitions;
  conv_pair(p, bp, input, filter, partitions);
  if (q >= partitions) return;  // (uniform per block: no thread reaches a barrier the others skip)
  const FftWorkspace w = conv_workspace<LOG2_N>(shared, p, twiddle);
  const float* h0 = h + (size_t)filter * p.h_stride;
  const float* h1 = h0 + p.h_stride;
  const int K = p.K, L = p.L;
  const auto partition = [=](int, int i) {  // partition q of both filters, zero-padded, read by the first pass
    const int s = q * K + i;
    const bool in = i < K && s < L;
    return make_float2(in ? h0[s] : 0.0f, in ? h1[s] : 0.0f);
  };
  const float2* z = conv_fft_load<MaxRadix, LOG2_N>(partition, w, p);
  store_two_spectra(z, p, H + ((size_t)bp * p.Q + q) * 2 * p.bins);
}

// out[f][jK + n] for the pair's two filters: multiply-accumulate over partitions, one inverse FFT of
// Y_f0 + i Y_f1, real part -> filter f0, imaginary part -> f1. Grid (J, pairs).
template <int MaxRadix, int LOG2_N = 0>  // LOG2_N > 0: the transform size fixed at compile time
__global__ void conv_output_blocks(const float2* X, const float2* H, const float2* twiddle, FusedConvParams p,
                                   float* out) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const FftWorkspace w = conv_workspace<LOG2_N>(shared, p, twiddle);
  const int j = blockIdx.x, bp = blockIdx.y, nb = p.K + 1, rs = p.bins;
  int b, filter, partitions;
  conv_pair(p, bp, b, filter, partitions);
  const float2* Hb = H + (size_t)bp * p.Q * 2 * rs;
  const float2* Xb = X + (size_t)b * p.J2 * rs;
  // Partitions q with an input frame j - q (from first_frame on), four at a time: their twelve loads are issued
  // together (indices clamped to the last partition, so that the group's tail re-reads it instead of branching),
  // then added in order q = 0, 1, ... as before (the same bits). Loaded and used one partition at a time (nvcc did
  // not unroll the loop), each partition cost a full round trip to L2 per bin and thread, with 8 warps a block and
  // 3 blocks an SM (sm_90 SASS); `#pragma unroll 4`, or a branch for the group's tail, had nvcc sink the loads to
  // their uses (two in flight at best).
  const int n_q = partitions < j - p.first_frame + 1 ? partitions : j - p.first_frame + 1;
  for (int k = threadIdx.x; k < nb; k += blockDim.x) {
    float2 y0 = make_float2(0.0f, 0.0f), y1 = y0;
    for (int q0 = 0; q0 < n_q; q0 += 4) {
      float2 xv[4], h0[4], h1[4];
BSIM_UNROLL
      for (int u = 0; u < 4; ++u) {
        const int q = q0 + u < n_q ? q0 + u : n_q - 1;
        xv[u] = Xb[(size_t)(j - q - p.first_frame) * rs + k];
        h0[u] = Hb[((size_t)q * 2 + 0) * rs + k], h1[u] = Hb[((size_t)q * 2 + 1) * rs + k];
      }
BSIM_UNROLL
      for (int u = 0; u < 4; ++u) {  // past n_q: + 0, which leaves a sum begun at +0 unchanged (it is never -0)
        const bool in = q0 + u < n_q;
        const float2 a = cmul(xv[u], h0[u]), c = cmul(xv[u], h1[u]);
        y0.x += in ? a.x : 0.0f, y0.y += in ? a.y : 0.0f, y1.x += in ? c.x : 0.0f, y1.y += in ? c.y : 0.0f;
      }
    }
    // Z_k = Y0_k + i Y1_k, and for the mirrored bin N-k: conj(Y0_k) + i conj(Y1_k).
    w.a[fft_slot(k)] = make_float2(y0.x - y1.y, y0.y + y1.x);
    if (k > 0 && k < p.K) w.a[fft_slot(p.N - k)] = make_float2(y0.x + y1.y, -y0.y + y1.x);
  }
  // The inverse transform's last pass writes the second half (the valid samples) straight to the output.
  const float scale = 1.0f / float(p.N);
  float* o0 = out + (size_t)filter * p.out_stride;
  float* o1 = o0 + p.out_stride;
  // K known at compile time in the fixed-size instance: the last pass's outputs below K (half of each butterfly's)
  // are then seen as unused and not computed.
  const int K = LOG2_N > 0 ? 1 << (LOG2_N - 1) : p.K, T = p.T;
  const auto valid = [=](int, int i, float2 v) {
    const int t = j * K + i - K;
    if (i < K || t >= T) return;
    o0[t] = v.x * scale, o1[t] = v.y * scale;
  };
  conv_fft<MaxRadix, LOG2_N>(SharedLoad{w.a, fft_stride(p.N)}, valid, w, p, true);
}

}  // namespace bsim::cuda
