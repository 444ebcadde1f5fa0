// The classic DoA estimators of doa/classic.cpp for a batch of examples on the GPU: the same STFT, the same
// statistics (per-bin 2x2 covariance, whose cross term whitened is the PHAT cross-spectrum of gcc_phat and
// srp_phat; the sum of per-frame PHAT phasors for the *_frames variants) and the same decisions (GCC-PHAT
// peak on a 1/8-sample lag grid -> nearest ITD of the set's table; SRP-PHAT argmax; MUSIC per-bin normalised
// pseudo-spectra summed), accumulated in double as on the CPU. Three kernels: STFT of frame groups in shared
// memory, statistics per example (a thread per bin, looping over frames), all five decisions per example.
// Device code only; runs on the CPU under kernels/emulation.h for the tests.
#pragma once
#include <cmath>
#include <complex>
#include <vector>

#include "doa/classic.h"
#include "kernels/emulation.h"
#include "kernels/smem_fft.cuh"
#include "sim/features.h"

namespace bsim::cuda {

struct DoaParams {
  int T, n_frames, n_fft, log2_n, win, hop, frames_per_block;
  int bins, bin_lo, bin_hi;  // analysis band (inclusive)
  int n_candidates;
  int max_lag8;              // GCC lag search +-max_lag8 on the 1/8-sample grid
};

struct DoaStats {  // per example and bin
  double a, d;     // sum |X_L|^2, sum |X_R|^2
  double bx, by;   // sum X_L conj X_R
  double gx, gy;   // sum of the per-frame PHAT phasors X_L conj X_R / |X_L conj X_R|
};

struct DoaSteering {  // per candidate and bin
  double lx, ly, rx, ry;  // HRTFs at the STFT resolution (from float, as the CPU)
  double ux, uy;          // (h_L conj h_R) / |h_L conj h_R| (0 where it vanishes): SRP steering
};

// Host side: the launch parameters and steering tables of `cpu` for examples of T samples.
inline DoaParams doa_params(const ClassicDoa& cpu, int T) {
  const FeatureConfig& fc = cpu.stft_config();
  DoaParams p{};
  p.T = T, p.n_frames = teacher_shape(fc, T).n_frames, p.n_fft = fc.n_fft, p.win = fc.win_length, p.hop = fc.hop_length;
  p.log2_n = int(std::lround(std::log2(double(fc.n_fft))));
  p.frames_per_block = 8, p.bins = fc.n_fft / 2 + 1, p.bin_lo = cpu.bin_lo(), p.bin_hi = cpu.bin_hi();
  p.n_candidates = int(cpu.candidates().size()), p.max_lag8 = cpu.max_lag_eighths();
  return p;
}
inline std::vector<DoaSteering> doa_steering(const ClassicDoa& cpu) {
  const int bins = cpu.stft_config().n_fft / 2 + 1, C = int(cpu.candidates().size());
  std::vector<DoaSteering> steer(size_t(C) * bins);
  for (size_t i = 0; i < steer.size(); ++i) {
    const std::complex<float> hl = cpu.hrtf_left()[i], hr = cpu.hrtf_right()[i];
    const std::complex<double> h(hl * std::conj(hr));  // as doa/classic.cpp: the product in float
    const double a = std::abs(h);
    const std::complex<double> u = a > 0 ? h / a : std::complex<double>(0.0, 0.0);
    steer[i] = {hl.real(), hl.imag(), hr.real(), hr.imag(), u.real(), u.imag()};
  }
  return steer;
}

inline int doa_stft_shared_bytes(const DoaParams& p) {
  return fft_workspace_bytes(p.n_fft, p.frames_per_block);
}
// doa_decide: `threads` Best entries (two doubles each), the MUSIC scores and the two PHAT spectra.
inline int doa_decide_shared_bytes(const DoaParams& p, int threads) {
  return int(sizeof(double)) * (2 * threads + p.n_candidates + 4 * p.bins);
}

// X[b][ear][t][k] for frame group blockIdx.x of example blockIdx.y. LOG2_N > 0: n_fft = 2^LOG2_N fixed at compile
// time (the shared-memory FFT's constant-size passes, as the teacher's); 0: any power of two from p.
template <int LOG2_N>
__global__ void doa_stft(const float* audio, const float* window, const float2* twiddle, DoaParams p, float2* X) {
  BSIM_DYNAMIC_SHARED(float2, shared);
  const int n = p.n_fft, F = p.frames_per_block, nb = p.bins;
  const FftWorkspace w = fft_workspace(shared, n, F, twiddle);
  const int b = blockIdx.y, t0 = blockIdx.x * F;
  const float* left = audio + (size_t)b * 2 * p.T;
  const float2* z = stft_pair_frames<LOG2_N>(left, left + p.T, window, w.tw, n, p.log2_n, p.win, p.hop, p.n_frames,
                                             t0, F, w.a, w.b);
  for (int idx = threadIdx.x; idx < F * nb; idx += blockDim.x) {
    const int f = idx / nb, k = idx % nb, t = t0 + f;
    if (t >= p.n_frames) continue;
    float2 l, r;
    split_two_real(z + f * fft_stride(n), n, k, l, r);
    X[(((size_t)b * 2 + 0) * p.n_frames + t) * nb + k] = l;
    X[(((size_t)b * 2 + 1) * p.n_frames + t) * nb + k] = r;
  }
}

// The instance for n_fft = 2^log2_n (stft_kernel_instance: fixed-size or general).
using DoaStftKernel = void (*)(const float*, const float*, const float2*, DoaParams, float2*);
inline DoaStftKernel doa_stft_kernel(int log2_n) {
  return stft_kernel_instance(log2_n, [](auto n) -> DoaStftKernel { return doa_stft<decltype(n)::value>; });
}

// stats[b][k] over the analysis band. Grid (B).
__global__ void doa_statistics(const float2* X, DoaParams p, DoaStats* stats) {
  const int b = blockIdx.x, nb = p.bins;
  const float2* XL = X + (size_t)b * 2 * p.n_frames * nb;
  const float2* XR = XL + (size_t)p.n_frames * nb;
  for (int k = p.bin_lo + threadIdx.x; k <= p.bin_hi; k += blockDim.x) {
    DoaStats s{0, 0, 0, 0, 0, 0};
    for (int t = 0; t < p.n_frames; ++t) {
      const float2 l = XL[(size_t)t * nb + k], r = XR[(size_t)t * nb + k];
      const double lx = l.x, ly = l.y, rx = r.x, ry = r.y;
      s.a += lx * lx + ly * ly, s.d += rx * rx + ry * ry;
      s.bx += lx * rx + ly * ry, s.by += ly * rx - lx * ry;
      // PHAT weight in float as the CPU (std::complex<float> g / |g|), accumulated in double.
      const float gx = l.x * r.x + l.y * r.y, gy = l.y * r.x - l.x * r.y;
      const float ga = sqrtf(gx * gx + gy * gy);
      if (ga > 0) s.gx += double(gx / ga), s.gy += double(gy / ga);
    }
    stats[(size_t)b * nb + k] = s;
  }
}

// Block-wide argmax / argmin / max for the decisions (first index wins ties, as the CPU loops). Serial over
// the block's partial results: these kernels are tiny, and the code stays valid under emulation.
struct Best {
  double v;
  int i;
};
__device__ inline Best block_best(Best mine, bool want_max, Best* scratch) {
  scratch[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    Best r = scratch[0];
    for (unsigned j = 1; j < blockDim.x; ++j) {
      const Best c = scratch[j];
      if (c.i < 0) continue;
      const bool better = r.i < 0 || (want_max ? (c.v > r.v || (c.v == r.v && c.i < r.i))
                                               : (c.v < r.v || (c.v == r.v && c.i < r.i)));
      if (better) r = c;
    }
    scratch[0] = r;
  }
  __syncthreads();
  const Best r = scratch[0];
  __syncthreads();
  return r;
}

// choice[b][m] = candidate index chosen by method m (ClassicMethod order: GCC-PHAT, SRP-PHAT, MUSIC,
// GCC-PHAT and SRP-PHAT on per-frame phasors). Grid (B); dynamic shared memory doa_decide_shared_bytes(p,
// blockDim.x).
__global__ void doa_decide(const DoaStats* stats, const DoaSteering* steer, const double* itd, DoaParams p, int* choice) {
  BSIM_DYNAMIC_SHARED(double, shared_doubles);
  Best* scratch = reinterpret_cast<Best*>(shared_doubles);
  double* score = shared_doubles + 2 * blockDim.x;
  double* phat = score + p.n_candidates;  // [variant][bin][re, im]: 0 whitened average, 1 per-frame phasors
  const int b = blockIdx.x, nb = p.bins, C = p.n_candidates;
  const DoaStats* S = stats + (size_t)b * nb;
  const double pi = 3.14159265358979323846;
  int chosen[kClassicMethods];  // indexed by ClassicMethod

  // The two PHAT cross-spectra, rounded to float as the CPU keeps them (0 outside the band).
  for (int k = threadIdx.x; k < nb; k += blockDim.x) {
    double ux = 0, uy = 0, fx = 0, fy = 0;
    if (k >= p.bin_lo && k <= p.bin_hi) {
      const double a = sqrt(S[k].bx * S[k].bx + S[k].by * S[k].by);
      if (a > 0) ux = double(float(S[k].bx / a)), uy = double(float(S[k].by / a));
      fx = double(float(S[k].gx)), fy = double(float(S[k].gy));
    }
    phat[2 * k] = ux, phat[2 * k + 1] = uy, phat[2 * (nb + k)] = fx, phat[2 * (nb + k) + 1] = fy;
  }
  __syncthreads();

  for (int v = 0; v < 2; ++v) {
    const double* G = phat + 2 * v * nb;
    // GCC-PHAT: r[m] = 2 sum_k Re(G_k exp(2 pi i k m / (8 n_fft))), peak over m in [-max_lag8, max_lag8].
    Best mine{-1e300, -1};
    for (int m = -p.max_lag8 + int(threadIdx.x); m <= p.max_lag8; m += blockDim.x) {
      double r = 0;
      for (int k = p.bin_lo; k <= p.bin_hi; ++k) {
        const double ang = 2.0 * pi * double(k) * double(m) / double(8 * p.n_fft);
        r += G[2 * k] * cos(ang) - G[2 * k + 1] * sin(ang);
      }
      r = float(2.0 * r);  // the CPU peak-picks float samples of its inverse FFT
      if (mine.i < 0 || r > mine.v) mine = {r, m + p.max_lag8};
    }
    const Best peak = block_best(mine, true, scratch);
    const double lag = -double(peak.i - p.max_lag8) / 8.0;
    mine = {1e300, -1};
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const double dist = fabs(itd[c] - lag);
      if (mine.i < 0 || dist < mine.v) mine = {dist, c};
    }
    chosen[int(v == 0 ? ClassicMethod::gcc_phat : ClassicMethod::gcc_phat_frames)] = block_best(mine, false, scratch).i;

    // SRP-PHAT.
    mine = {-1e300, -1};
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      double pw = 0;
      for (int k = p.bin_lo; k <= p.bin_hi; ++k) {
        const DoaSteering& h = steer[(size_t)c * nb + k];
        pw += G[2 * k] * h.ux + G[2 * k + 1] * h.uy;  // Re(G conj(u))
      }
      if (mine.i < 0 || pw > mine.v) mine = {pw, c};
    }
    chosen[int(v == 0 ? ClassicMethod::srp_phat : ClassicMethod::srp_phat_frames)] = block_best(mine, true, scratch).i;
  }

  // MUSIC: per bin, the noise eigenvector of the 2x2 covariance against every candidate's HRTF pair.
  for (int c = threadIdx.x; c < C; c += blockDim.x) score[c] = 0;
  __syncthreads();
  for (int k = p.bin_lo; k <= p.bin_hi; ++k) {
    const DoaStats s = S[k];
    if (s.a + s.d <= 0) continue;  // uniform across the block
    const double tr = s.a + s.d, det = s.a * s.d - (s.bx * s.bx + s.by * s.by);
    const double lmin = 0.5 * (tr - sqrt(fmax(0.0, tr * tr - 4 * det)));
    double e0x, e0y, e1x, e1y;
    if (sqrt(s.bx * s.bx + s.by * s.by) > 1e-12 * tr) {
      e0x = s.bx, e0y = s.by, e1x = lmin - s.a, e1y = 0;
    } else {
      e0x = s.a <= s.d ? 1.0 : 0.0, e1x = s.a <= s.d ? 0.0 : 1.0, e0y = e1y = 0;
    }
    const double en = sqrt(e0x * e0x + e0y * e0y + e1x * e1x + e1y * e1y);
    e0x /= en, e0y /= en, e1x /= en, e1y /= en;
    // p_c = 1 / max(|e^H h_c|^2 / |h_c|^2, 1e-12); each bin votes with p_c / max_c p_c.
    auto pseudo = [&](int c) {
      const DoaSteering& h = steer[(size_t)c * nb + k];
      const double hn = h.lx * h.lx + h.ly * h.ly + h.rx * h.rx + h.ry * h.ry;
      const double vx = e0x * h.lx + e0y * h.ly + e1x * h.rx + e1y * h.ry;  // conj(e0) hl + conj(e1) hr
      const double vy = e0x * h.ly - e0y * h.lx + e1x * h.ry - e1y * h.rx;
      return 1.0 / fmax((vx * vx + vy * vy) / fmax(hn, 1e-30), 1e-12);
    };
    Best pmax{-1e300, -1};
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const double pc = pseudo(c);
      if (pmax.i < 0 || pc > pmax.v) pmax = {pc, c};
    }
    const Best top = block_best(pmax, true, scratch);
    for (int c = threadIdx.x; c < C; c += blockDim.x) score[c] += pseudo(c) / top.v;
    __syncthreads();
  }
  Best mine{-1e300, -1};
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    if (mine.i < 0 || score[c] > mine.v) mine = {score[c], c};
  chosen[int(ClassicMethod::music)] = block_best(mine, true, scratch).i;
  if (threadIdx.x == 0)
    for (int m = 0; m < kClassicMethods; ++m) choice[b * kClassicMethods + m] = chosen[m];
}

}  // namespace bsim::cuda
