// Teacher features in one pass over the audio (sim/features.h defines them; the CPU is the reference):
// a block takes `frames_per_block` consecutive frames of one example, windows both ears into one complex
// signal per frame (left + i right), transforms them in shared memory (kernels/smem_fft.cuh), separates the
// two ears' spectra and writes IPD/ILD rows, or for GCC-PHAT forms the PHAT-weighted cross-spectra and
// transforms them back two frames at a time (G_a + i G_b: both correlations are real, so they come back as the
// real and imaginary parts of one inverse transform) and writes the lags kept. Nothing between the audio and
// the features goes through global memory, unlike framing + cuFFT + feature kernels (~6 MB per 4 s example).
// Stores go frame-fastest so that a warp writes whole runs of a feature row.
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
  int max_lag, n_features, frames_per_block;  // frames_per_block even
};

// Shared memory a block of the fused kernel needs (bytes): two transform buffers and the twiddles.
inline int fused_teacher_shared_bytes(const FusedTeacherParams& p) {
  return fft_workspace_bytes(p.n_fft, p.frames_per_block);
}
// The power kernel: a block takes up to kPowerFrames consecutive frames of one example (fused_teacher_power_frames:
// fewer where their span would not fit kPowerSpan samples), stages the span of audio they cover in shared memory
// as (left, right) pairs with coalesced loads (1.09x the audio at hop 160, win 400: the frames overlap 2.5x),
// then each frame's window is summed by kPowerSegments threads, each over one segment. An earlier version read
// the frames straight from global memory, 32 lanes per frame and ear, and reduced them as a five-level tree with
// a barrier per level: 26 % of the H200's bandwidth (run 8), ~15 % of the teacher's time.
constexpr int kPowerFrames = 16, kPowerSegments = 16, kPowerSpan = 3072;
__host__ __device__ inline int fused_teacher_power_frames(const FusedTeacherParams& p) {
  const int fit = 1 + (kPowerSpan - p.win) / p.hop;  // win <= n_fft <= 1024 < kPowerSpan
  return fit < kPowerFrames ? fit : kPowerFrames;
}
// Samples per segment: at least win / kPowerSegments and odd, so that the 16 segments of one frame, read by half a
// warp as float2, fall in 16 different bank pairs (an odd stride is coprime to 16).
__host__ __device__ inline int fused_teacher_power_segment(const FusedTeacherParams& p) {
  return ((p.win + kPowerSegments - 1) / kPowerSegments) | 1;
}
__host__ __device__ inline int fused_teacher_power_span(const FusedTeacherParams& p) {
  return (fused_teacher_power_frames(p) - 1) * p.hop + p.win;
}
// Dynamic shared memory of a power block (bytes): a double per frame, the span as float2, the window, 5 partial sums
// per segment and frame.
inline int fused_teacher_power_shared_bytes(const FusedTeacherParams& p) {
  const int F = fused_teacher_power_frames(p);
  return int(sizeof(float2)) * fused_teacher_power_span(p) + int(sizeof(float)) * (p.win + 5 * F * kPowerSegments) +
         int(sizeof(double)) * F;
}

// The power kernel's blocks per example: power holds [B][fused_teacher_power_parts(p)] partial sums.
__host__ __device__ inline int fused_teacher_power_parts(const FusedTeacherParams& p) {
  const int F = fused_teacher_power_frames(p);
  return (p.n_frames + F - 1) / F;
}

// parts[b][block] = sum over both ears and this block's frames of sum_k |X_k|^2. Each block writes its own part
// and fused_teacher_power_total adds them in order: no atomics, so that eps, and the features, are the same bits
// on every run (with one atomicAdd per block they were not). Grid (fused_teacher_power_parts(p), B); dynamic
// shared memory fused_teacher_power_shared_bytes(p).
__global__ void fused_teacher_power(const float* audio, const float* window, FusedTeacherParams p, double* power) {
  BSIM_DYNAMIC_SHARED(double, per_frame);  // [F], then the rest
  const int F = fused_teacher_power_frames(p), len = fused_teacher_power_segment(p);
  const int b = blockIdx.y, t0 = blockIdx.x * F, frames = p.n_frames - t0 < F ? p.n_frames - t0 : F;
  const int span = (frames - 1) * p.hop + p.win;  // within the example: the last frame ends by T
  float2* span_lr = reinterpret_cast<float2*>(per_frame + F);
  float* win_s = reinterpret_cast<float*>(span_lr + fused_teacher_power_span(p));
  float* seg_sums = win_s + p.win;  // [5][F][kPowerSegments]: sum v_l^2 + v_r^2, v_l, (-1)^i v_l, v_r, (-1)^i v_r
  const float* left = audio + (size_t)b * 2 * p.T + (size_t)t0 * p.hop;
  const float* right = left + p.T;
  // Four loads per ear in flight per thread before any store.
  for (int base = 0; base < span; base += 4 * blockDim.x) {
    float2 v[4];
BSIM_UNROLL
    for (int u = 0; u < 4; ++u) {
      const int s = base + u * blockDim.x + threadIdx.x;
      v[u] = s < span ? make_float2(left[s], right[s]) : make_float2(0.0f, 0.0f);
    }
BSIM_UNROLL
    for (int u = 0; u < 4; ++u) {
      const int s = base + u * blockDim.x + threadIdx.x;
      if (s < span) span_lr[s] = v[u];
    }
  }
  for (int i = threadIdx.x; i < p.win; i += blockDim.x) win_s[i] = window[i];
  __syncthreads();
  const int cells = F * kPowerSegments;
  for (int idx = threadIdx.x; idx < cells; idx += blockDim.x) {
    const int f = idx / kPowerSegments, i0 = (idx - f * kPowerSegments) * len;
    const int i1 = i0 + len < p.win ? i0 + len : p.win;
    float a2 = 0.0f, l0 = 0.0f, l1 = 0.0f, r0 = 0.0f, r1 = 0.0f;
    if (f < frames) {
      const float2* x = span_lr + f * p.hop;
      for (int i = i0; i < i1; ++i) {
        const float w = win_s[i], sign = (i & 1) ? -1.0f : 1.0f;
        const float vl = x[i].x * w, vr = x[i].y * w;
        a2 += vl * vl + vr * vr, l0 += vl, l1 += sign * vl, r0 += vr, r1 += sign * vr;
      }
    }
    seg_sums[idx] = a2, seg_sums[cells + idx] = l0, seg_sums[2 * cells + idx] = l1;
    seg_sums[3 * cells + idx] = r0, seg_sums[4 * cells + idx] = r1;
  }
  __syncthreads();
  // Per frame, Parseval over both ears: sum_{k<=n/2} |X_k|^2 = (n sum v^2 + X_0^2 + X_{n/2}^2) / 2 with X_0 = sum v
  // and X_{n/2} = sum (-1)^i v; segments added in order.
  for (int f = threadIdx.x; f < F; f += blockDim.x) {
    float q[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int g = 0; g < kPowerSegments; ++g)
BSIM_UNROLL
      for (int c = 0; c < 5; ++c) q[c] += seg_sums[c * cells + f * kPowerSegments + g];
    const double l0 = q[1], l1 = q[2], r0 = q[3], r1 = q[4];
    per_frame[f] = 0.5 * (double(p.n_fft) * double(q[0]) + l0 * l0 + l1 * l1 + r0 * r0 + r1 * r1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double acc = 0;
    for (int f = 0; f < F; ++f) acc += per_frame[f];
    power[(size_t)b * gridDim.x + blockIdx.x] = acc;
  }
}

// power[b] = the sum of example b's parts, in order. One thread per example: a kernel of its own, so that
// fused_teacher reads one value (each of its threads summing the parts added ~30 dependent loads to every block).
__global__ void fused_teacher_power_total(const double* parts, int n_parts, int B, double* power) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  double total = 0;
  for (int i = 0; i < n_parts; ++i) total += parts[(size_t)b * n_parts + i];
  power[b] = total;
}

// 1 / max(|G|, eps) for the PHAT weight, as rsqrt(max(|G|^2, eps^2)) with eps2 = eps^2 (at least FLT_MIN): one
// MUFU.RSQ (2 ulp) where an IEEE sqrt, an IEEE reciprocal and a max in double took ~34 instructions per bin, with
// two conversions to and from double, in this issue-bound kernel (sm_90 SASS). |G|^2 overflows float only for
// |G| > 1.8e19, as the sqrtf of the same sum did.
__device__ inline float phat_inverse(float gx, float gy, float eps2) { return rsqrtf(fmaxf(gx * gx + gy * gy, eps2)); }

// The last inverse pass's butterflies that write a kept lag: butterfly j writes indices j + r per (r < R, per =
// n / R), so lags 0..L (r = 0) come from j = 0..L and lags -L..-1 (indices n-L..n-1, r = R-1) from j = per-L..per-1:
// 2L + 1 of per (33 of 64 at 512 points), when 2L + 1 <= per; else all. The rest wrote only dropped lags.
struct LagItems {
  int max_lag;
  __device__ __forceinline__ int count(int per) const { return 2 * max_lag + 1 <= per ? 2 * max_lag + 1 : per; }
  __device__ __forceinline__ int item(int u, int per) const {
    return 2 * max_lag + 1 > per || u <= max_lag ? u : per - 2 * max_lag - 1 + u;
  }
};

// twiddle: fft_twiddles(n_fft, 8). Grid (ceil(n_frames / frames_per_block), B); dynamic shared
// memory fused_teacher_shared_bytes(p).
// LOG2_N > 0: n_fft = 2^LOG2_N fixed at compile time (the shared-memory FFT's constant-size passes: fewer
// instructions in an issue-bound kernel); 0: any power of two from p. fused_teacher_kernel picks one.
template <int LOG2_N>
__global__ void fused_teacher(const float* audio, const float* window, const float2* twiddle, const double* power,
                              FusedTeacherParams p, float* out) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const int log2_n = LOG2_N > 0 ? LOG2_N : p.log2_n;
  const int n = 1 << log2_n, half_n = n / 2, nb = half_n + 1, F = p.frames_per_block, S = fft_stride(n);
  const FftWorkspace w = fft_workspace(shared, n, F, twiddle);  // buffers [F][S] each, twiddles
  float2 *buf_a = w.a, *buf_b = w.b, *tw = w.tw;
  const int b = blockIdx.y, t0 = blockIdx.x * F;
  const float* left = audio + (size_t)b * 2 * p.T;
  const float* right = left + p.T;
  float2* z = stft_pair_frames<LOG2_N>(left, right, window, tw, n, log2_n, p.win, p.hop, p.n_frames, t0, F, buf_a,
                                      buf_b);
  float2* free_buf = z == buf_a ? buf_b : buf_a;
  const double eps_d = 1e-10 * power[b] / (2.0 * double(p.n_frames) * nb) + 1e-30;
  const float eps = float(eps_d), eps2 = fmaxf(float(eps_d * eps_d), 1.17549435e-38f);
  float* ob = out + (size_t)b * p.n_features * p.n_frames;
  if (p.kind != 0) {
    for (int idx = threadIdx.x; idx < F * nb; idx += blockDim.x) {
      const int k = idx / F, f = idx - k * F, t = t0 + f;
      if (t >= p.n_frames) continue;
      float2 l, r;
      split_two_real(z + f * S, n, k, l, r);
      const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;  // L conj(R)
      if (p.kind == 1 || p.kind == 3) {  // L conj(R) / max(|L conj(R)|, eps), as the CPU (sim/features.h)
        const float inv = phat_inverse(gx, gy, eps2);
        ob[(size_t)k * p.n_frames + t] = gx * inv;
        ob[(size_t)(nb + k) * p.n_frames + t] = gy * inv;
      }
      if (p.kind == 2 || p.kind == 3) {
        const int row = p.kind == 3 ? 2 * nb + k : k;
        ob[(size_t)row * p.n_frames + t] = 10.0f * log10f((l.x * l.x + l.y * l.y + eps) / (r.x * r.x + r.y * r.y + eps));
      }
    }
    return;
  }
  // GCC-PHAT. Frames 2q and 2q+1: Y = G_2q + i G_2q+1 over the whole circle (G_{n-k} = conj G_k; G_0 and
  // G_{n/2} are real), so that one inverse transform gives r_2q + i r_2q+1, times n. As the CPU:
  // r[lag] = (1/n) (G_0 + (-1)^lag G_{n/2} + 2 sum_{k=1}^{n/2-1} Re(G_k e^{+2 pi i k lag / n})).
  // Items (q, k) with k fastest over [0, n/2), then the n/2 bin of every pair: a warp reads 32 consecutive bins from
  // a multiple of 32, so that the reads of bin k fall on distinct bank pairs (with q nb + k, the runs of odd q began
  // one bin off and every read was 2-way; the reads of bin n - k stay 2-way: the swizzle's aligned runs are k's).
  const int half_items = (F / 2) << (log2_n - 1);
  for (int idx = threadIdx.x; idx < half_items + F / 2; idx += blockDim.x) {
    const bool top = idx >= half_items;
    const int q = top ? idx - half_items : idx >> (log2_n - 1), k = top ? half_n : idx & (half_n - 1);
    float2 g[2];
BSIM_UNROLL
    for (int e = 0; e < 2; ++e) {
      float2 l, r;
      split_two_real(z + (2 * q + e) * S, n, k, l, r);
      const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;  // L conj(R)
      const float inv = phat_inverse(gx, gy, eps2);
      g[e] = make_float2(gx * inv, (k == 0 || k == half_n) ? 0.0f : gy * inv);
    }
    float2* y = free_buf + q * S;
    y[fft_slot(k)] = make_float2(g[0].x - g[1].y, g[0].y + g[1].x);
    if (k > 0 && k < half_n) y[fft_slot(n - k)] = make_float2(g[0].x + g[1].y, g[1].x - g[0].y);
  }
  // The inverse's last pass writes the lags kept straight to the output: lag l at index l mod n.
  const int max_lag = p.max_lag, n_frames = p.n_frames;
  const float scale = 1.0f / float(n);
  const auto lags = [=](int q, int i, float2 v) {
    const int li = i <= max_lag ? i + max_lag : i >= n - max_lag ? i - n + max_lag : -1;
    if (li < 0) return;
    const int t = t0 + 2 * q;
    if (t < n_frames) ob[(size_t)li * n_frames + t] = v.x * scale;
    if (t + 1 < n_frames) ob[(size_t)li * n_frames + t + 1] = v.y * scale;
  };
  smem_fft_io<8, LOG2_N>(SharedLoad{free_buf, S}, lags, z, free_buf, tw, log2_n, F / 2, true, LagItems{max_lag});
}

// The instance for n_fft = 2^log2_n (stft_kernel_instance: fixed-size or general).
using FusedTeacherKernel = void (*)(const float*, const float*, const float2*, const double*, FusedTeacherParams,
                                    float*);
inline FusedTeacherKernel fused_teacher_kernel(int log2_n) {
  return stft_kernel_instance(log2_n, [](auto n) -> FusedTeacherKernel { return fused_teacher<decltype(n)::value>; });
}

}  // namespace bsim::cuda
