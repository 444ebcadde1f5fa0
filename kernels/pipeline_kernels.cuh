// The GPU pipeline's own kernels (kernels/pipeline_gpu.cu launches them around the BRIR, convolution and
// teacher kernels): synthetic noise spectra, the dry signals' gather, the spectra's products and tilts, and the
// mixing at the SNR with the output gain, each as sim/pipeline.cpp's Renderer::render computes it. Device code
// only; runs on the CPU under kernels/emulation.h for the tests (tests/test_kernel_emulation.cpp).
#pragma once
#include "kernels/emulation.h"  // first: the CUDA keywords for the headers below when compiled as C++

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#include <vector>

#include "kernels/counter_rng.cuh"
#include "sim/brir.h"
#include "sim/pipeline.h"
#include "sim/spectral_tilt.h"

namespace bsim::cuda {

constexpr int kPipelineThreads = 256;  // per block in every launch of these kernels (the reductions' scratch)

struct ExampleParams {
  double snr_db;
  unsigned long long noise_seed;
  int noise_type;       // 0 diffuse, 1 point, 2 babble
  int synthetic_point;  // point noise drawn on the device
  int first_emitter, n_emitters;  // its noise emitters among the emitter rows
  int grid_id;
  float speech_tilt_db_per_octave;  // sim/spectral_tilt.h, applied to the target speech's spectrum
};

struct Segment {
  const float* src;  // device memory: corpus arena or synthetic noise
  int take, pos, row, pad;
  double gain;
};

struct EmitterParams {
  int example;
  int equal_level;
};

struct Gains {
  float noise;   // SNR scaling of the noise
  float pad;
  double output; // the one gain applied to every output signal
};

// Spectra of the synthetic noise (as sim/brir.cpp's diffuse_noise): white normals shaped by the colour tilt,
// and for diffuse noise by the HRTF set's diffuse-field magnitudes and interaural coherence. Z[b][ch][k].
__global__ void synthetic_spectra(const ExampleParams* ex, const float* shape, const float* mag_l, const float* mag_r,
                                  const float* coh, int ns, int nbs, float2* Z) {
  const int b = blockIdx.y;
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= nbs) return;
  const ExampleParams& p = ex[b];
  const bool diffuse = p.noise_type == 0;
  if (!diffuse && !p.synthetic_point) return;
  const float s = shape[k] / float(ns) * sqrtf(0.5f * float(ns));  // E|X_k|^2 = ns, then / ns as the CPU
  const bool real_bin = k == 0 || 2 * k == ns;
  const float2 a = normal2(p.noise_seed, 2ull * k);
  const float2 x1 = make_float2(a.x * s, real_bin ? 0.0f : a.y * s);
  float2* z = Z + (size_t)b * 2 * nbs;
  if (!diffuse) {
    z[k] = make_float2(x1.x, x1.y);
    return;
  }
  const float2 c = normal2(p.noise_seed, 2ull * k + 1);  // the second ear's independent part
  const float2 x2 = make_float2(c.x * s, real_bin ? 0.0f : c.y * s);
  const size_t g = (size_t)p.grid_id * nbs + k;
  const float ml = mag_l[g], mr = mag_r[g], co = coh[g], q = sqrtf(fmaxf(0.0f, 1.0f - co * co));
  z[k] = make_float2(ml * x1.x, ml * x1.y);
  z[nbs + k] = make_float2(mr * (co * x1.x + q * x2.x), mr * (co * x1.y + q * x2.y));
}

// The gather's and the mixing kernels' strided loops, t = begin, begin + step, ... < end, with four iterations' loads
// issued before any of them is used: use(t, load(t)) in the loop's order (each thread's sums come out the same bits).
// Written as plain loops, nvcc kept one iteration's loads in flight per thread (sm_90 SASS: run-time trip counts):
// ~2 TB/s, 40 % of the H200's bandwidth, for emitter_energy and mix_noise in run 8.
template <typename Load, typename Use>
__device__ __forceinline__ void strided_by_4(int begin, int end, int step, Load load, Use use) {
  int t = begin;
  for (; t + 3 * step < end; t += 4 * step) {
    decltype(load(t)) v[4];
BSIM_UNROLL
    for (int u = 0; u < 4; ++u) v[u] = load(t + u * step);
BSIM_UNROLL
    for (int u = 0; u < 4; ++u) use(t + u * step, v[u]);
  }
  for (; t < end; t += step) use(t, load(t));
}

// rows[seg.row][seg.pos + i] = src[i] * gain: the dry signals, exactly as Renderer::assemble.
__global__ void gather_segments(const Segment* segs, int n_segs, long long stride, float* rows) {
  for (int s = blockIdx.y; s < n_segs; s += gridDim.y) {
    const Segment sg = segs[s];
    float* dst = rows + (size_t)sg.row * stride + sg.pos;
    strided_by_4(blockIdx.x * blockDim.x + threadIdx.x, sg.take, gridDim.x * blockDim.x,
                 [=](int i) { return sg.src[i]; }, [=](int i, float v) { dst[i] = float(double(v) * sg.gain); });
  }
}

// H[h_row0 + j][k] *= X[j / 2][k] * scale for j < n_rows (two ears per input row); input rows below B are
// the examples' target speech, whose spectrum is tilted as the CPU's convolve_many does (N-point transforms).
__global__ void multiply_rows(const float2* X, float2* H, long long n_rows, long long h_row0, int nb,
                              float scale, const ExampleParams* ex, int B, int N, float fs_hz) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_rows * nb) return;
  const long long j = i / nb;
  const int k = int(i % nb);
  float2 x = X[(j / 2) * nb + k];
  if (j / 2 < B) {
    const float w = spectral_tilt_gain(ex[j / 2].speech_tilt_db_per_octave, k, N, fs_hz);
    x.x *= w, x.y *= w;
  }
  float2& h = H[(h_row0 + j) * nb + k];
  const float2 y = h;
  h = make_float2((x.x * y.x - x.y * y.y) * scale, (x.x * y.y + x.y * y.x) * scale);
}

// X[b][k] *= tilt gain of example b at bin k / N: the target speech's spectra before they return to the time
// domain for the partitioned convolution (which then reads the tilt's pre-ringing from the rows' ends). Rows
// from B to n_rows (the rest of the transforms' last chunk: emitter rows) get 1 / N, so that their round trip
// leaves them as they were.
__global__ void tilt_rows(float2* X, int B, int n_rows, int nb, int N, float fs_hz, const ExampleParams* ex) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)n_rows * nb) return;
  const int b = int(i / nb), k = int(i % nb);
  const float w = (b < B ? spectral_tilt_gain(ex[b].speech_tilt_db_per_octave, k, N, fs_hz) : 1.0f) / float(N);
  X[i].x *= w, X[i].y *= w;
}

// --- mixing ----------------------------------------------------------------------------------------------
// The SNR and the output gain need sums over a whole example (both ears, all of [0, T)). They are taken per
// chunk of kMixChunk samples, one block per (chunk, example or emitter), so that a batch fills the card (256
// examples at 16 kHz: 16 x 256 = 4,096 blocks; one block per example left most of an H100's SMs idle or
// half-occupied while it streamed 2.5 MB), and the chunks' partial sums are added in chunk order by whoever
// needs the total: deterministic, and the same total wherever it is formed.
constexpr int kMixChunk = 4096;
__host__ __device__ inline int mix_chunks(int T) { return (T + kMixChunk - 1) / kMixChunk; }

struct MixSums {
  double a, b;  // two partial sums of one (example, chunk): see the kernel that writes them
};

// The block's total of each thread's (a, b): a summed, b summed or (kMaxOfB) its maximum; in thread 0 only.
// Two barriers (32 threads add strided partials, then thread 0 adds theirs) rather than a tree's log2(threads):
// the order stays fixed, and the CPU emulation of the kernels (a fiber switch per thread and barrier) stays cheap.
template <bool kMaxOfB>
__device__ MixSums reduce_to_thread0(MixSums v, MixSums* scratch /* blockDim.x entries */) {
  const int tid = threadIdx.x, n = blockDim.x;
  scratch[tid] = v;
  __syncthreads();
  if (tid < 32) {
    for (int j = tid + 32; j < n; j += 32)
      v.a += scratch[j].a, v.b = kMaxOfB ? fmax(v.b, scratch[j].b) : v.b + scratch[j].b;
    scratch[tid] = v;
  }
  __syncthreads();
  if (tid == 0)
    for (int j = 1; j < 32 && j < n; ++j)
      v.a += scratch[j].a, v.b = kMaxOfB ? fmax(v.b, scratch[j].b) : v.b + scratch[j].b;
  return v;
}

__device__ inline int chunk_end(int c, int T) { return T - c * kMixChunk < kMixChunk ? T : (c + 1) * kMixChunk; }

// The noise gain for the example's SNR (reverberant speech over noise energy, both ears), from mix_noise's
// per-chunk sums {speech energy, noise energy}.
__device__ inline float snr_noise_gain(const MixSums* sums, int chunks, double snr_db) {
  double es = 0, en = 0;
  for (int c = 0; c < chunks; ++c) es += sums[c].a, en += sums[c].b;
  return en > 0 ? float(sqrt(es / (en * pow(10.0, snr_db / 10.0)))) : 0.0f;
}

// partial[e][c] = both ears' energy over chunk c of emitter e's rendering (babble levelling), for the noise
// emitters e = first + blockIdx.y. Grid (chunks, noise emitters).
__global__ void emitter_energy(const float* Y, long long stride, int T, int first, double* partial) {
  BSIM_SHARED(MixSums, scratch, [kPipelineThreads]);
  const int e = first + blockIdx.y, c = blockIdx.x, t1 = chunk_end(c, T);
  double acc = 0;
  for (int ear = 0; ear < 2; ++ear) {
    const float* y = Y + ((size_t)e * 2 + ear) * stride;
    strided_by_4(c * kMixChunk + threadIdx.x, t1, blockDim.x, [=](int t) { return y[t]; },
                 [&](int, float v) { acc += double(v) * v; });
  }
  const MixSums s = reduce_to_thread0<false>({acc, 0.0}, scratch);
  if (threadIdx.x == 0) partial[(size_t)e * gridDim.x + c] = s.a;
}

// noise[b][ear][t] before SNR scaling: diffuse noise, or the sum of the example's emitters (babble talkers
// each at unit energy), in the CPU's order of summation; and sums[b][c] = {reverberant speech energy, noise
// energy} over the chunk. Grid (chunks, examples); `partial` is emitter_energy's.
__global__ void mix_noise(const ExampleParams* ex, const EmitterParams* em, const double* partial, const float* syn,
                          int ns, const float* Y, long long stride, int T, float* noise, MixSums* sums) {
  BSIM_SHARED(MixSums, scratch, [kPipelineThreads]);
  BSIM_SHARED(float, gain, [kMaxBabbleTalkers]);  // of each emitter of the example
  const int b = blockIdx.y, c = blockIdx.x, chunks = gridDim.x, t1 = chunk_end(c, T);
  const ExampleParams& p = ex[b];
  for (int i = threadIdx.x; i < p.n_emitters; i += blockDim.x) {
    const int e = p.first_emitter + i;
    float g = 1.0f;
    if (em[e].equal_level) {
      double energy = 0;
      for (int k = 0; k < chunks; ++k) energy += partial[(size_t)e * chunks + k];
      g = energy > 0 ? float(1.0 / sqrt(energy)) : 0.0f;
    }
    gain[i] = g;
  }
  __syncthreads();
  double es = 0, en = 0;
  for (int ear = 0; ear < 2; ++ear) {
    const float* rev = Y + ((size_t)b * 2 + ear) * stride;
    const float* sy = p.noise_type == 0 ? syn + ((size_t)b * 2 + ear) * ns : nullptr;
    const float* em0 = Y + ((size_t)p.first_emitter * 2 + ear) * stride;  // emitter i's row: em0 + 2 i stride
    float* out = noise + ((size_t)b * 2 + ear) * T;
    const int n_em = p.n_emitters;
    const float* g = gain;
    // load: the reverberant sample and the noise sample, its emitters added in order (as before, per sample)
    const auto load = [=](int t) {
      float n = sy ? sy[t] : 0.0f;
      for (int i = 0; i < n_em; ++i) n = __fadd_rn(n, __fmul_rn(g[i], em0[(size_t)i * 2 * stride + t]));
      return make_float2(rev[t], n);
    };
    strided_by_4(c * kMixChunk + threadIdx.x, t1, blockDim.x, load, [&](int t, float2 rn) {
      out[t] = rn.y;
      es += double(rn.x) * rn.x, en += double(rn.y) * rn.y;
    });
  }
  const MixSums s = reduce_to_thread0<false>({es, en}, scratch);
  if (threadIdx.x == 0) sums[(size_t)b * chunks + c] = s;
}

// With the noise at the SNR's gain: out[b][c] = {the mixture's energy, the peak of mixture and clean} over the
// chunk. Grid (chunks, examples); `snr` is mix_noise's sums.
__global__ void mixture_sums(const ExampleParams* ex, const MixSums* snr, const float* Y, const float* direct,
                             long long stride, const float* noise, int T, MixSums* out) {
  BSIM_SHARED(MixSums, scratch, [kPipelineThreads]);
  const int b = blockIdx.y, c = blockIdx.x, chunks = gridDim.x, t1 = chunk_end(c, T);
  const float ng = snr_noise_gain(snr + (size_t)b * chunks, chunks, ex[b].snr_db);
  double ea = 0;
  float peak = 0;
  for (int ear = 0; ear < 2; ++ear) {
    const float* rev = Y + ((size_t)b * 2 + ear) * stride;
    const float* cl = direct + ((size_t)b * 2 + ear) * stride;
    const float* nz = noise + ((size_t)b * 2 + ear) * T;
    // load: the mixture sample and the clean one
    const auto load = [=](int t) { return make_float2(__fadd_rn(rev[t], __fmul_rn(nz[t], ng)), cl[t]); };
    strided_by_4(c * kMixChunk + threadIdx.x, t1, blockDim.x, load, [&](int, float2 ac) {
      ea += double(ac.x) * ac.x;
      peak = fmaxf(peak, fmaxf(fabsf(ac.x), fabsf(ac.y)));
    });
  }
  const MixSums s = reduce_to_thread0<true>({ea, double(peak)}, scratch);  // a float's max: exact in double
  if (threadIdx.x == 0) out[(size_t)b * chunks + c] = s;
}

// Per example (one thread each): the noise gain for the SNR, then the output gain (mixture at kMixtureRms, no
// peak of mixture or clean above kMaxPeak), from the chunks' sums.
__global__ void example_gains(const ExampleParams* ex, const MixSums* snr, const MixSums* mixture, int chunks, int B,
                              int T, Gains* gains) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const float ng = snr_noise_gain(snr + (size_t)b * chunks, chunks, ex[b].snr_db);
  double e_aug = 0;
  float pk = 0;
  for (int c = 0; c < chunks; ++c) {
    const MixSums& m = mixture[(size_t)b * chunks + c];
    e_aug += m.a, pk = fmaxf(pk, float(m.b));
  }
  const double rms = sqrt(e_aug / double(2 * T));
  double g = rms > 0 ? kMixtureRms / rms : 1.0;
  if (pk * g > kMaxPeak) g = kMaxPeak / pk;
  gains[b] = {ng, 0.0f, g};
}

// The four output signals at the output gain, and float16 copies of clean and augmented.
__global__ void finalise(const float* Y, const float* direct, long long stride, const float* noise_raw,
                         const Gains* gains, int B, int T, float* clean, float* reverberant, float* noise,
                         float* augmented, __half* clean_half, __half* augmented_half) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)B * 2 * T) return;
  const int t = int(i % T);
  const long long row = i / T;  // b * 2 + ear
  const int b = int(row / 2);
  const Gains g = gains[b];
  const float r = Y[row * stride + t], c = direct[row * stride + t];
  const float n = __fmul_rn(noise_raw[i], g.noise);
  const float a = __fadd_rn(r, n);
  const float ca = float(c * g.output), aa = float(a * g.output);
  clean[i] = ca, reverberant[i] = float(r * g.output), noise[i] = float(n * g.output), augmented[i] = aa;
  if (clean_half) clean_half[i] = __float2half_rn(ca), augmented_half[i] = __float2half_rn(aa);
}

// What synthetic_spectra reads, on the nbs = ns/2 + 1 bins of the noise's ns-point transform: the colour's
// shape (sim/brir.h noise_color_shape, as the CPU's diffuse_noise) and each HRTF set's diffuse-field magnitudes
// and coherence ([grid][bin]). Host code.
struct SyntheticNoiseTables {
  std::vector<float> shape, mag_l, mag_r, coh;
};

inline SyntheticNoiseTables synthetic_noise_tables(const std::vector<DiffuseField>& diffuse, double color_exponent,
                                                   int ns, double fs) {
  SyntheticNoiseTables t;
  t.shape = noise_color_shape(ns, fs, color_exponent);
  const size_t nbs = t.shape.size();
  t.mag_l.resize(diffuse.size() * nbs), t.mag_r.resize(t.mag_l.size()), t.coh.resize(t.mag_l.size());
  for (size_t i = 0; i < diffuse.size(); ++i)
    for (size_t k = 0; k < nbs; ++k) {
      const double f = double(k) * fs / ns;
      t.mag_l[i * nbs + k] = diffuse[i].magnitude_at(0, f), t.mag_r[i * nbs + k] = diffuse[i].magnitude_at(1, f);
      t.coh[i * nbs + k] = diffuse[i].coherence_at(f);
    }
  return t;
}

}  // namespace bsim::cuda
