// The BRIR kernels: image sources of each room (one block per room), the scatter of each image's delayed HRIR
// into its room's response (one block per room, in shared memory; work = images x (HRIR taps + sinc taps), no
// dense gather over output samples), and the late tail's spectra and envelopes around one batched inverse FFT.
// Launched by kernels/brir_gpu.cu; device code only, and it runs on the CPU under kernels/emulation.h for the
// tests (tests/test_kernel_emulation.cpp), as does tail_tables, the host-side shaping the tail kernels read.
#pragma once
#include <cmath>
#include <vector>

#include "kernels/emulation.h"  // first: the CUDA keywords for the headers below when compiled as C++

#include "io/grid_index.h"
#include "kernels/brir_gpu.h"
#include "kernels/counter_rng.cuh"
#include "kernels/smem_fft.cuh"
#include "sim/brir.h"
#include "sim/fracdelay.h"

namespace bsim::cuda {

__device__ inline int imin(int a, int b) { return a < b ? a : b; }
__device__ inline int imax(int a, int b) { return a > b ? a : b; }

constexpr int kImageThreads = 256;   // threads per room in the image kernel
constexpr int kScatterThreads = 256; // threads per room in the scatter kernel
// The scatter's shared accumulator: samples per ear (two ears: 48,000 bytes beside the stage, 14 kB at 16 kHz).
// The early part of a 16 kHz room (transition <= 100 ms: ~1,800 samples with the HRIR and the sinc) fits many
// times over, a 48 kHz one (~5,500) too.
constexpr int kScatterSharedSamples = 6000;
constexpr int kMaxHalfWidth = 64;

struct DeviceImage {
  double delay_samples;  // double: a float loses the fraction of long delays (48 kHz, 2 s) to 1e-3 samples
  float gain;
  int grid_index;
  int direct;            // 1 for the order-0 image
};

struct GridView {
  const float* ir;  // [direction][ear][tap]
  int n_taps, n_az, n_el;
  double az_step_deg, el_step_deg;
};

// One grid per (SOFA set, head scale): 5 sets x 5 scales is 25. The set travels as a kernel parameter
// (40 B per grid; 64 grids = 2.5 kB, within the 4 kB parameter space).
constexpr int kMaxGrids = 64;
struct GridSet {
  GridView g[kMaxGrids];
};
static_assert(sizeof(GridSet) <= 3072, "GridSet is a kernel parameter: keep it well within the 4 kB parameter space");

// Each room's images in the order of their candidate index t (a block-wide prefix sum of the kept flags gives
// every kept candidate its slot), so that a room renders to the same bits on every run: with slots from an atomic
// counter the images' order, and the float rounding of the scatter's sums over them, changed from run to run
// (a resumed shard differed from an uninterrupted one). counts[room] = the room's images, kept or not beyond
// `capacity`. Launched with kImageThreads threads per block.
__global__ void image_sources_kernel(const RoomGeometry* rooms, GridSet grids, double fs_over_c, int capacity,
                                     DeviceImage* images,  // [room][capacity]
                                     int* counts) {        // [room]
  BSIM_SHARED(int, scan, [kImageThreads]);
  const RoomGeometry& r = rooms[blockIdx.x];
  const GridView& grid = grids.g[r.grid_id];
  const double L[3] = {r.size_m[0], r.size_m[1], r.size_m[2]};
  const double s[3] = {r.source_m[0], r.source_m[1], r.source_m[2]};
  const double p[3] = {r.listener_m[0], r.listener_m[1], r.listener_m[2]};
  const double dmax = r.max_distance_m;
  int nmax[3], span[3];
  for (int a = 0; a < 3; ++a) nmax[a] = int(ceil(dmax / (2.0 * L[a]))) + 1, span[a] = 2 * (2 * nmax[a] + 1);
  const long long total = (long long)span[0] * span[1] * span[2];
  const double cy = cos((double)r.yaw_rad), sy = sin((double)r.yaw_rad);
  const double pi = 3.14159265358979323846;
  int base = 0;  // slots taken by the chunks before this one
  for (long long chunk = 0; chunk < total; chunk += blockDim.x) {
    const long long t = chunk + threadIdx.x;
    int keep = 0;
    DeviceImage img{};
    if (t < total) {
      long long rest = t;
      int nq[3];
      for (int a = 2; a >= 0; --a) nq[a] = int(rest % span[a]), rest /= span[a];
      double pos[3], d2 = 0;
      int order[6];
      for (int a = 0; a < 3; ++a) {
        const int n = nq[a] / 2 - nmax[a], q = nq[a] % 2;
        pos[a] = (1 - 2 * q) * s[a] + 2.0 * n * L[a];
        order[2 * a] = abs(n - q), order[2 * a + 1] = abs(n);
        d2 += (pos[a] - p[a]) * (pos[a] - p[a]);
      }
      keep = d2 <= dmax * dmax;
      if (keep) {
        const double d = sqrt(d2);
        double g = 1.0 / (4.0 * pi * fmax(d, 1e-3));
        for (int w = 0; w < 6; ++w) g *= pow((double)r.beta[w], order[w]);
        const double vx = pos[0] - p[0], vy = pos[1] - p[1], vz = pos[2] - p[2];
        const double hx = cy * vx + sy * vy, hy = -sy * vx + cy * vy;
        const double az = atan2(hy, hx) * 180.0 / pi, el = atan2(vz, hypot(hx, hy)) * 180.0 / pi;
        const int is_direct = nq[0] / 2 == nmax[0] && nq[1] / 2 == nmax[1] && nq[2] / 2 == nmax[2] &&
                              nq[0] % 2 == 0 && nq[1] % 2 == 0 && nq[2] % 2 == 0;
        img = {d * fs_over_c, float(g),
               grid_direction_index(az, el, grid.n_az, grid.n_el, grid.az_step_deg, grid.el_step_deg), is_direct};
      }
    }
    // Inclusive prefix sum of the kept flags over the block (Hillis-Steele: log2(threads) steps).
    scan[threadIdx.x] = keep;
    for (int off = 1; off < (int)blockDim.x; off *= 2) {
      __syncthreads();
      const int add = (int)threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
      __syncthreads();
      scan[threadIdx.x] += add;
    }
    __syncthreads();
    const int slot = base + scan[threadIdx.x] - keep, kept = scan[blockDim.x - 1];
    if (keep && slot < capacity) images[(size_t)blockIdx.x * capacity + slot] = img;
    base += kept;
    __syncthreads();  // every thread has read the sums before the next chunk writes its flags
  }
  if (threadIdx.x == 0) counts[blockIdx.x] = base;
}

// out[room][ear][t] = sum over the room's images of gain * (HRIR(direction) conv sinc(frac)) at floor(delay), for
// t below the early part's end: one block per room, its images kScatterImages at a time. Per chunk: the images'
// sinc taps; every output of every image of the chunk (2 x (taps + sinc) each, independent dot products, runs of
// kScatterRun consecutive ones per thread) into a shared stage; then each sample of the chunk's reach adds the
// stage's values in image order, by the one thread that owns it. Before (ab52f6d) the images went one at a time,
// two barriers each, with ~440 outputs over 256 threads between them: latency-bound (H200 run 8, Nsight Compute: 1.31 ms of a 7.0 ms
// batch; 0.67 ms for 256 rooms' early parts, run 2's atomics took 0.22). The sums run in the same order as then
// (image by image per sample: the same bits), into a shared accumulator written once at the end, or, for a room
// whose early part does not fit `shared_samples` (a long transition, or images up to any distance), into `out`
// directly (its block alone writes the room's rows). No atomics: the same bits on every run. `out` rows hold zeros
// on entry. The direct image (one per room) also goes to `direct` for rooms below n_direct. Dynamic shared
// memory scatter_shared_bytes(shared_samples, stage_seg), stage_seg >= every grid's taps + 2 half_width.
constexpr int kScatterImages = 8;
constexpr int kScatterRun = 4;  // outputs per thread and (image, ear) in a chunk
inline size_t scatter_shared_bytes(int shared_samples, int stage_seg) {
  return sizeof(float) * (2 * size_t(shared_samples) + size_t(kScatterImages) * 2 * stage_seg);
}
// Its static shared memory (taps, first, ir_row, is_direct below), beside the dynamic part in a block's budget.
constexpr size_t kScatterStaticShared =
    sizeof(float) * kScatterImages * (2 * kMaxHalfWidth + 1) + 3 * sizeof(int) * kScatterImages;
__global__ void scatter_kernel(const RoomGeometry* rooms, const DeviceImage* images, const int* counts, int capacity,
                               GridSet grids, int half_width, int length, long long stride, float* out, float* direct,
                               int n_direct, double fs_over_c, int shared_samples, int stage_seg) {
  BSIM_DYNAMIC_SHARED(float, smem);
  float* acc = smem;                           // [ear][shared_samples]
  float* stage = smem + 2 * shared_samples;    // [image of the chunk][ear][stage_seg]
  BSIM_SHARED(float, taps, [kScatterImages][2 * kMaxHalfWidth + 1]);
  BSIM_SHARED(int, first, [kScatterImages]);     // the output index of each image's first value (n0 - half_width)
  BSIM_SHARED(int, ir_row, [kScatterImages]);    // its HRIR's direction
  BSIM_SHARED(int, is_direct, [kScatterImages]);
  const int room = blockIdx.x;
  const RoomGeometry& r = rooms[room];
  const GridView& grid = grids.g[r.grid_id];
  const int n_images = counts[room] < capacity ? counts[room] : capacity;
  const int seg = grid.n_taps + 2 * half_width, n_taps_sinc = 2 * half_width + 1;
  // Every image lies within max_distance_m, so its outputs end before reach + seg.
  const double reach = double(r.max_distance_m) * fs_over_c;
  const int span = reach + seg + 2 >= double(length) ? length : int(ceil(reach)) + seg + 2;
  const bool in_shared = span <= shared_samples;
  const bool with_direct = direct && room < n_direct;
  float* const rows = out + (size_t)room * 2 * stride;  // ear e's row at rows + e stride
  if (in_shared)
    for (int i = threadIdx.x; i < 2 * span; i += blockDim.x) acc[(i / span) * shared_samples + i % span] = 0.0f;
  for (int c0 = 0; c0 < n_images; c0 += kScatterImages) {
    const int n_chunk = imin(kScatterImages, n_images - c0);
    __syncthreads();  // the previous chunk's stage and taps are read; the accumulator's zeros are written
    for (int i = threadIdx.x; i < n_chunk * n_taps_sinc; i += blockDim.x) {
      const int g = i / n_taps_sinc, j = i - g * n_taps_sinc;
      const DeviceImage img = images[(size_t)room * capacity + c0 + g];
      const double fl = floor(img.delay_samples);
      const float frac = float(img.delay_samples - fl);
      taps[g][j] = img.gain * frac_delay_tap(j - half_width, frac, half_width, sinf(3.14159265358979f * frac));
      if (j == 0) first[g] = int(fl) - half_width, ir_row[g] = img.grid_index, is_direct[g] = img.direct;
    }
    __syncthreads();
    // The chunk's outputs, kScatterRun consecutive ones of one (image, ear) per thread: output j is
    // sum over kk = -hw..hw (ascending) of taps[kk + hw] h[j - hw - kk], and the run's h values slide through
    // registers, one load per kk for the run instead of one per output (the loads of h and the taps, one each per
    // multiply-add, bound the kernel before). Terms whose h index is outside the HRIR add +0 (a select, no load),
    // which leaves a sum begun at +0 unchanged: the same bits as summing only the terms in range.
    const int runs = (seg + kScatterRun - 1) / kScatterRun;  // per (image, ear)
    for (int e = threadIdx.x; e < n_chunk * 2 * runs; e += blockDim.x) {
      const int g = e / (2 * runs), rest = e - g * 2 * runs, ear = rest >= runs;
      const int j0 = (rest - ear * runs) * kScatterRun, n_taps = grid.n_taps;
      const float* h = grid.ir + ((size_t)ir_row[g] * 2 + ear) * n_taps;
      const auto h_at = [=](int m) { return unsigned(m) < unsigned(n_taps) ? h[m] : 0.0f; };
      float w[kScatterRun], sum[kScatterRun];  // w[r] = h[j0 + r - hw - kk] at this kk
BSIM_UNROLL
      for (int r = 0; r < kScatterRun; ++r) w[r] = h_at(j0 + r), sum[r] = 0.0f;
      for (int kk = -half_width; kk <= half_width; ++kk) {
        const float tap = taps[g][kk + half_width];
BSIM_UNROLL
        for (int r = 0; r < kScatterRun; ++r) sum[r] += tap * w[r];
BSIM_UNROLL
        for (int r = kScatterRun - 1; r > 0; --r) w[r] = w[r - 1];
        w[0] = h_at(j0 - half_width - kk - 1);
      }
BSIM_UNROLL
      for (int r = 0; r < kScatterRun; ++r) {
        const int j = j0 + r, pos = first[g] + j;
        if (j >= seg) break;
        const bool inside = pos >= 0 && pos < length;
        if (inside && is_direct[g] && with_direct) direct[((size_t)room * 2 + ear) * stride + pos] += sum[r];
        stage[((size_t)g * 2 + ear) * stage_seg + j] = inside ? sum[r] : 0.0f;  // one writer each
      }
    }
    __syncthreads();
    // The samples the chunk reaches, each by one thread: its images' values added in image order.
    int lo = length, hi = 0;
    for (int g = 0; g < n_chunk; ++g) lo = imin(lo, first[g]), hi = imax(hi, first[g] + seg);
    lo = imax(lo, 0), hi = imin(hi, in_shared ? span : length);
    for (int ear = 0; ear < 2; ++ear)
      for (int pos = lo + threadIdx.x; pos < hi; pos += blockDim.x) {
        float v = in_shared ? acc[ear * shared_samples + pos] : rows[ear * stride + pos];
        for (int g = 0; g < n_chunk; ++g) {
          const int j = pos - first[g];
          if (j >= 0 && j < seg) v += stage[((size_t)g * 2 + ear) * stage_seg + j];
        }
        if (in_shared)
          acc[ear * shared_samples + pos] = v;
        else
          rows[ear * stride + pos] = v;
      }
  }
  if (!in_shared) return;
  __syncthreads();
  for (int i = threadIdx.x; i < 2 * span; i += blockDim.x) {
    const int ear = i / span, t = i % span;
    rows[ear * stride + t] = acc[ear * shared_samples + t];
  }
}

// --- late tail -------------------------------------------------------------------------------------------
constexpr int kTailThreads = 256;

// Bin k of the two ears' tail spectra of room r before any band weight: Y_L = M_L X1, Y_R = M_R (coh X1 +
// sqrt(1-coh^2) X2), X1 and X2 white (E|X_k|^2 = n) from the room's counter stream. Both tail paths draw them here.
__device__ inline void tail_ear_bins(const RoomGeometry& r, const float* mag_l_all, const float* mag_r_all,
                                     const float* coh_all, int n, int nb, int k, float2& yl, float2& yr) {
  const size_t gofs = (size_t)r.grid_id * nb;
  const float *mag_l = mag_l_all + gofs, *mag_r = mag_r_all + gofs, *coh = coh_all + gofs;
  const unsigned long long seed = r.tail_seed;
  const float s = sqrtf(0.5f * float(n));  // each of re/im carries half of E|X|^2 = n (DC/Nyquist: real only)
  const float2 a = normal2(seed, 2ull * k), b = normal2(seed, 2ull * k + 1);
  const float2 x1 = make_float2(a.x * s, (k == 0 || 2 * k == n) ? 0.0f : a.y * s);
  const float2 x2 = make_float2(b.x * s, (k == 0 || 2 * k == n) ? 0.0f : b.y * s);
  const float c = coh[k], q = sqrtf(fmaxf(0.0f, 1.0f - c * c));
  yl = make_float2(mag_l[k] * x1.x, mag_l[k] * x1.y);
  yr = make_float2(mag_r[k] * (c * x1.x + q * x2.x), mag_r[k] * (c * x1.y + q * x2.y));
}

// Z[room][ear][group][k] = w_group(f_k) * Y_ear[k] / n, Y as tail_ear_bins draws it. A group is the bands of one
// T60 ratio (sim/brir.h tail_band_groups), its weight their summed weights.
__global__ void tail_spectra_kernel(const RoomGeometry* rooms, const float* mag_l_all, const float* mag_r_all,
                                    const float* coh_all,  // [grid][bin]: diffuse fields on the tail's n/2+1 bins
                                    const float* weights,  // [group][bin]
                                    int n_groups, int n, int nb, float2* Z) {
  const int room = blockIdx.y;
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= nb || rooms[room].t60_s <= 0.0f) return;
  float2 yl, yr;
  tail_ear_bins(rooms[room], mag_l_all, mag_r_all, coh_all, n, nb, k, yl, yr);
  const float inv_n = 1.0f / float(n);
  for (int g = 0; g < n_groups; ++g) {
    const float w = weights[g * nb + k] * inv_n;
    Z[(((size_t)room * 2 + 0) * n_groups + g) * nb + k] = make_float2(w * yl.x, w * yl.y);
    Z[(((size_t)room * 2 + 1) * n_groups + g) * nb + k] = make_float2(w * yr.x, w * yr.y);
  }
}

// The tail's envelope in float, as the samples' own precision: level sqrt(c / (4 pi V fs)), the fade-in over
// kTailFadeS centred on the transition, and each group's decay exp(-3 ln10 t / T60_g) as exp2f(rate t). In double
// (an exp and a log per group, a division and a sqrt per sample) it held tail_envelope_kernel to 19 % of the
// H200's bandwidth (run 8: 0.35 ms of the batch); in float with an IEEE division per group and sample, each behind
// a slow-path branch that kept the groups' loads apart, to ~50 instructions a group (sm_90 SASS). A room's
// constants are now computed once per thread, each group's rate is one multiply (by 1 / its T60 ratio, from the
// host), and the groups' loads are issued together. Both tail paths use these.
struct TailEnvelope {
  float level;      // sqrt(c / (4 pi V fs))
  float inv_fs;     // seconds per sample
  float log2_rate;  // log2 of the decay per sample at T60 ratio 1: -3 log2(10) / (T60 fs)
};
__device__ inline TailEnvelope tail_envelope(const RoomGeometry& r, double fs, double c) {
  const float volume = r.size_m[0] * r.size_m[1] * r.size_m[2], f = float(fs);
  return {rsqrtf(4.0f * 3.14159265f * volume * f / float(c)), 1.0f / f, -3.0f * 3.32192809f / (r.t60_s * f)};
}
// The fade-in at time ts (s): 0 before t0 - kTailFadeS / 2, sin^2 rising to 1 at t0 + kTailFadeS / 2.
__device__ inline float tail_fade(const RoomGeometry& r, float ts) {
  const float t0 = r.transition_s, half = 0.5f * float(kTailFadeS);
  if (ts >= t0 + half) return 1.0f;
  const float u = fminf(fmaxf((ts - (t0 - half)) * float(1.0 / kTailFadeS), 0.0f), 1.0f);
  const float s = sinpif(0.5f * u);
  return s * s;
}
// Whether sample t is before the tail's fade-in starts (no tail there).
__device__ inline bool before_tail(const RoomGeometry& r, int t, float inv_fs) {
  return float(t) * inv_fs < r.transition_s - 0.5f * float(kTailFadeS);
}

// out[room][ear][t] += sum_g sqrt(c / (4 pi V fs)) exp(-3 ln10 t / T60_g) fade(t) z[room][ear][g][t], for
// start <= t < the room's n_samples (where the CPU's BRIR of the room ends). group_inv_ratio[g]: 1 / group g's T60
// ratio; n_groups <= kTailBands.
__global__ void tail_envelope_kernel(const RoomGeometry* rooms, const float* z, const float* group_inv_ratio,
                                     int n_groups, int n, int length, double fs, double c, long long stride,
                                     float* out) {
  const int room = blockIdx.y / 2, ear = blockIdx.y % 2;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const RoomGeometry& r = rooms[room];
  if (t >= length || (r.n_samples > 0 && t >= r.n_samples) || r.t60_s <= 0.0f) return;
  const TailEnvelope e = tail_envelope(r, fs, c);
  if (before_tail(r, t, e.inv_fs)) return;
  const float gain = e.level * tail_fade(r, float(t) * e.inv_fs);
  const float* zt = z + ((size_t)room * 2 + ear) * n_groups * n + t;  // group g's sample t at zt[g n]
  float v[kTailBands], inv[kTailBands];
BSIM_UNROLL
  for (int g = 0; g < kTailBands; ++g) {  // all loads first (indices clamped to the last group)
    const int gg = g < n_groups ? g : n_groups - 1;
    v[g] = zt[(size_t)gg * n], inv[g] = group_inv_ratio[gg];
  }
  float acc = 0.0f;
BSIM_UNROLL
  for (int g = 0; g < kTailBands; ++g)  // in group order; + 0 past n_groups leaves the sum (never -0) unchanged
    acc += g < n_groups ? exp2f(e.log2_rate * inv[g] * float(t)) * v[g] : 0.0f;
  out[((size_t)room * 2 + ear) * stride + t] += gain * acc;
}

// --- late tail, one kernel per (room, ear) (BSIM_TAIL_KERNEL=fused) -------------------------------------
// The tail's real inverse transform of n = 16,384 points as a complex one of 8,192 in shared memory
// (kernels/smem_fft.cuh), each group's envelope applied as the transform's last pass stores its values, the
// groups summed in a shared accumulator, one read-modify-write of the response. What the cuFFT path moves
// through global memory per room (every group's spectrum, its time signal, the envelope's reads: ~2.3 MB) comes
// down to each ear's spectrum, written once and read once per group (~130 kB, mostly from L2). Responses up to
// n samples (16 kHz, ~1 s); longer ones take the cuFFT path.
constexpr int kTailFusedN = 16384, kTailFusedLog2M = 13, kTailFusedThreads = 512;
inline int tail_fused_shared_bytes() {
  return fft_workspace_bytes(kTailFusedN / 2, 1) + kTailFusedN * int(sizeof(float));
}

// S[room][ear][k] = Y_ear[k] / n, k <= n/2: tail_spectra_kernel's spectra before the groups' weights.
__global__ void tail_ear_spectra_kernel(const RoomGeometry* rooms, const float* mag_l_all, const float* mag_r_all,
                                        const float* coh_all, int n, int nb, float2* S) {
  const int room = blockIdx.y;
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= nb || rooms[room].t60_s <= 0.0f) return;
  float2 yl, yr;
  tail_ear_bins(rooms[room], mag_l_all, mag_r_all, coh_all, n, nb, k, yl, yr);
  const float inv_n = 1.0f / float(n);
  S[((size_t)room * 2 + 0) * nb + k] = make_float2(yl.x * inv_n, yl.y * inv_n);
  S[((size_t)room * 2 + 1) * nb + k] = make_float2(yr.x * inv_n, yr.y * inv_n);
}

// out[room][ear][t] += the tail_envelope_kernel's sum for t below the room's end, from the spectra S. One block
// per (room, ear). The real inverse transform y_t = sum_k X_k e^(2 pi i k t / n) over a Hermitian X gives
// y_2m + i y_2m+1 = sum_(k < n/2) Z_k e^(2 pi i k m / (n/2)) with Z_k = (X_k + X_(k+n/2)) + i (X_k - X_(k+n/2))
// e^(2 pi i k / n) and X_(k+n/2) = conj(X_(n/2-k)).
template <int MaxRadix>
__global__ void tail_fused_kernel(const RoomGeometry* rooms, const float2* S, const float* weights,
                                  const float* group_inv_ratio, int n_groups, const float2* twiddle, int length,
                                  double fs, double c, long long stride, float* out) {
  constexpr int N = kTailFusedN, M = N / 2, nb = M + 1;
  BSIM_DYNAMIC_SHARED(float2, shared);
  const int room = blockIdx.x / 2, ear = blockIdx.x % 2;
  const RoomGeometry& r = rooms[room];
  if (r.t60_s <= 0.0f) return;  // the whole block: no tail
  const FftWorkspace w = fft_workspace(shared, M, 1, twiddle);
  float* acc = reinterpret_cast<float*>(w.tw + fft_twiddle_count(M));
  const int end = imin(imin(length, N), r.n_samples > 0 ? r.n_samples : length);
  for (int t = threadIdx.x; t < N; t += blockDim.x) acc[t] = 0.0f;  // visible after the transform's first barrier
  const float2* s = S + ((size_t)room * 2 + ear) * nb;
  const TailEnvelope e = tail_envelope(r, fs, c);
  for (int g = 0; g < n_groups; ++g) {
    const float* wg = weights + (size_t)g * nb;
    const float rate = e.log2_rate * group_inv_ratio[g];
    const auto load = [=](int, int k) {
      const float2 xk = make_float2(s[k].x * wg[k], s[k].y * wg[k]);
      const float2 xh = make_float2(s[M - k].x * wg[M - k], -s[M - k].y * wg[M - k]);  // X_(k+M)
      float sn, cs;
      sincospif(float(k) / float(M), &sn, &cs);
      const float2 sum = cadd(xk, xh), rot = cmul(csub(xk, xh), make_float2(cs, sn));
      return make_float2(sum.x - rot.y, sum.y + rot.x);
    };
    const auto store = [=](int, int m, float2 v) {
      const int t = 2 * m;
      if (t < end) acc[t] += exp2f(rate * float(t)) * v.x;
      if (t + 1 < end) acc[t + 1] += exp2f(rate * float(t + 1)) * v.y;
    };
    // (ends with a barrier)
    smem_fft_io<MaxRadix, kTailFusedLog2M>(load, store, w.a, w.b, w.tw, kTailFusedLog2M, 1, true);
  }
  for (int t = threadIdx.x; t < end; t += blockDim.x) {
    if (before_tail(r, t, e.inv_fs)) continue;
    out[((size_t)room * 2 + ear) * stride + t] += e.level * tail_fade(r, float(t) * e.inv_fs) * acc[t];
  }
}

// The late tail's per-bin shaping on the n-point grid of its inverse FFT (n = good_fft_size(response length)):
// each HRTF set's diffuse-field magnitudes and coherence, and the summed band weights of each group of bands of
// equal T60 ratio (sim/brir.h tail_band_groups) with that ratio. Host code.
struct TailTables {
  int n = 0, nb = 0, n_groups = 0, n_grids = 0;
  std::vector<float> mag_l, mag_r, coh;  // [grid][bin]
  std::vector<float> weights;            // [group][bin]
  std::vector<float> group_inv_ratio;    // [group]: 1 / the group's T60 ratio
};

inline TailTables tail_tables(const std::vector<const DiffuseField*>& diffuse, const std::vector<double>& band_ratio,
                              int n, double fs) {
  const TailBandGroups groups = tail_band_groups(band_ratio);
  TailTables t;
  t.n = n, t.nb = n / 2 + 1, t.n_groups = int(groups.ratio.size()), t.n_grids = int(diffuse.size());
  const size_t nb = size_t(t.nb);
  t.mag_l.resize(nb * diffuse.size()), t.mag_r.resize(nb * diffuse.size()), t.coh.resize(nb * diffuse.size());
  t.weights.resize(size_t(t.n_groups) * nb);
  for (const double ratio : groups.ratio) t.group_inv_ratio.push_back(float(1.0 / ratio));
  for (int k = 0; k < t.nb; ++k) {
    const double f = double(k) * fs / n;
    for (size_t i = 0; i < diffuse.size(); ++i) {
      const DiffuseField& d = *diffuse[i];
      t.mag_l[i * nb + k] = d.magnitude_at(0, f), t.mag_r[i * nb + k] = d.magnitude_at(1, f);
      t.coh[i * nb + k] = d.coherence_at(f);
    }
    for (int g = 0; g < t.n_groups; ++g) t.weights[size_t(g) * nb + k] = float(groups.weight(g, f));
  }
  return t;
}

}  // namespace bsim::cuda
