// FFTs in shared memory done by all threads of a block: Stockham autosort passes of radix 8 (one radix-2 or
// radix-4 pass first where log2 n is not a multiple of 3), each thread holding one radix-R butterfly in
// registers, ping-ponging between two buffers. A 512-point transform is three passes, so every value crosses
// shared memory three times instead of the nine of radix-2, with one barrier per pass. Strided loops, so the
// code also runs sequentially under kernels/emulation.h. Device code only.
//
// Layout: value i of a transform lives at fft_slot(i), an XOR swizzle of its low four bits by bits 3-8, and
// transforms follow each other every fft_stride(n) float2. A float2 access by half a warp is conflict-free
// when its 16 slots fall in 16 different bank pairs (slot mod 16): the swizzle gives that for the passes'
// contiguous loads and strided stores of both radices at 512 and 4096 points (bench/smem_bank_conflicts.py;
// padding one slot in 8 gave 1.7x the conflict-free wavefront count), and the stride of n + 2 staggers
// transforms so that loops over (bin, frame) with the frame fastest read 8 transforms without conflicts.
//
// Radix: passes of 8 by default; max_radix 16 takes passes of 16 where that needs fewer passes (4096 points: 3
// instead of 4), at twice the registers per thread.
#pragma once
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/emulation.h"

namespace bsim::cuda {

// XOR-linear: fft_slot(a ^ b) = fft_slot(a) ^ fft_slot(b), so for disjoint bits (j < 2^L) fft_slot(j + (r << L)) =
// fft_slot(j) ^ fft_slot(r << L), a constant for each r when L is one (the fixed-size passes below).
__host__ __device__ constexpr __forceinline__ int fft_slot(int i) { return i ^ (((i >> 3) ^ (i >> 5)) & 15); }
__host__ __device__ constexpr __forceinline__ int fft_stride(int n) { return n + 2; }
__host__ __device__ __forceinline__ int fft_twiddle_count(int n) { return n >= 4 ? n / 4 : 1; }

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

// Where a pass takes its values from and puts them: shared-memory buffers in the layout above, or the
// caller's functors (global memory, values computed on the fly), so that the first pass can read the input
// and the last pass write the output without staging them in shared memory.
struct SharedLoad {
  const float2* buf;
  int stride;
  __device__ __forceinline__ float2 operator()(int c, int i) const { return buf[c * stride + fft_slot(i)]; }
};
struct SharedStore {
  float2* buf;
  int stride;
  __device__ __forceinline__ void operator()(int c, int i, float2 v) const { buf[c * stride + fft_slot(i)] = v; }
};

__device__ __forceinline__ void dft16(float2* v) {
  // x[4 a + b]: 4-point DFTs over a for each b, twiddles W16^(b k1), 4-point DFTs over b: X[k1 + 4 k2].
  dft4(v[0], v[4], v[8], v[12]);
  dft4(v[1], v[5], v[9], v[13]);
  dft4(v[2], v[6], v[10], v[14]);
  dft4(v[3], v[7], v[11], v[15]);
  const float c1 = 0.92387953251128674f, s1 = 0.38268343236508977f, h = 0.70710678118654752f;
  v[5] = cmul(v[5], make_float2(c1, -s1));     // W^1
  v[9] = cmul(v[9], make_float2(h, -h));       // W^2
  v[13] = cmul(v[13], make_float2(s1, -c1));   // W^3
  v[6] = cmul(v[6], make_float2(h, -h));       // W^2
  v[10] = times_minus_i(v[10]);                // W^4
  v[14] = cmul(v[14], make_float2(-h, -h));    // W^6
  v[7] = cmul(v[7], make_float2(s1, -c1));     // W^3
  v[11] = cmul(v[11], make_float2(-h, -h));    // W^6
  v[15] = cmul(v[15], make_float2(-c1, s1));   // W^9
  // Now v[b + 4 k1] holds the twiddled inner DFTs; the outer DFT over b for each k1 gives X[k1 + 4 k2] in
  // v[4 k1 + k2]: transpose the 4 x 4 result into natural order.
  dft4(v[0], v[1], v[2], v[3]);
  dft4(v[4], v[5], v[6], v[7]);
  dft4(v[8], v[9], v[10], v[11]);
  dft4(v[12], v[13], v[14], v[15]);
  float2 t;
  t = v[1], v[1] = v[4], v[4] = t;
  t = v[2], v[2] = v[8], v[8] = t;
  t = v[3], v[3] = v[12], v[12] = t;
  t = v[6], v[6] = v[9], v[9] = t;
  t = v[7], v[7] = v[13], v[13] = t;
  t = v[11], v[11] = v[14], v[14] = t;
}

// log2 of a pass's radix R (2, 4, 8 or 16).
template <int R>
constexpr int log2_radix = R == 16 ? 4 : R == 8 ? 3 : R == 4 ? 2 : 1;

// Where a pass finds its twiddles in the table of fft_twiddles (kernels read it from shared memory): w_k = exp(-2 pi i
// k / (ns R)) at w[k], and for radix 16 w_k^4 at w4[k], k < ns. The pass with ns = 1 (the first) takes none.
struct PassTwiddles {
  const float2 *w, *w4;
};
__host__ __device__ __forceinline__ PassTwiddles pass_twiddles(const float2* tw, int log2_n, int log2_ns) {
  return {tw + (1 << log2_ns), tw + (1 << (log2_n - 3)) + (1 << log2_ns)};
}

// One butterfly of a Stockham pass, its values in v: the twiddles exp(-2 pi i k r / (ns R)) (none for k = 0), then
// the R-point DFT.
template <int R>
__device__ __forceinline__ void twiddle_and_dft(float2* v, PassTwiddles tw, int k) {
  if (k != 0) {
    const float2 w = tw.w[k];
    if constexpr (R == 16) {
      // w^r = (w^4)^(r / 4) w^(r mod 4): chains of at most three products (w^4 from the table).
      const float2 w2 = cmul(w, w), w4 = tw.w4[k], w8 = cmul(w4, w4);
      const float2 lo[4] = {make_float2(1.0f, 0.0f), w, w2, cmul(w2, w)};
      const float2 hi[4] = {make_float2(1.0f, 0.0f), w4, w8, cmul(w8, w4)};
BSIM_UNROLL
      for (int r = 1; r < 16; ++r) {
        if (r & 3) v[r] = cmul(v[r], lo[r & 3]);
        if (r >> 2) v[r] = cmul(v[r], hi[r >> 2]);
      }
    } else {
      float2 wr = w;
BSIM_UNROLL
      for (int r = 1; r < R; ++r) v[r] = cmul(v[r], wr), wr = cmul(wr, w);
    }
  }
  if constexpr (R == 16) dft16(v);
  if constexpr (R == 8) dft8(v);
  if constexpr (R == 4) dft4(v[0], v[1], v[2], v[3]);
  if constexpr (R == 2) dft2(v);
}

// One Stockham pass of radix R = 2^log2_r over `count` transforms: thread item j (< n/R) reads value
// j + r n/R, applies the twiddles exp(-2 pi i (j mod ns) r / (ns R)), does the R-point DFT and writes value
// (j - j mod ns) R + j mod ns + r ns; ns is the product of the earlier passes' radices. conj_in / conj_out
// conjugate what is read / written (an inverse transform as conj(FFT(conj x))).
template <int R, typename Load, typename Store>
__device__ inline void fft_pass(Load load, Store store, const float2* tw, int log2_n, int log2_ns, int count,
                                bool conj_in, bool conj_out) {
  constexpr int log2_r = log2_radix<R>;
  const int log2_per = log2_n - log2_r, per = 1 << log2_per, ns_mask = (1 << log2_ns) - 1;
  const PassTwiddles ptw = pass_twiddles(tw, log2_n, log2_ns);
  for (int item = threadIdx.x; item < (count << log2_per); item += blockDim.x) {
    const int c = item >> log2_per, j = item & (per - 1), k = j & ns_mask;
    float2 v[R];
BSIM_UNROLL
    for (int r = 0; r < R; ++r) {
      v[r] = load(c, j + (r << log2_per));
      if (conj_in) v[r].y = -v[r].y;
    }
    twiddle_and_dft<R>(v, ptw, k);
    const int d = ((j - k) << log2_r) + k;
BSIM_UNROLL
    for (int r = 0; r < R; ++r) {
      float2 o = v[r];
      if (conj_out) o.y = -o.y;
      store(c, d + (r << log2_ns), o);
    }
  }
}

// The pass plan: radix-8 passes (radix 16 with max_radix 16 where that takes fewer passes), the remainder
// of log2 n as a smaller first pass.
struct FftPasses {
  int log2_r, first, passes;  // radix of the main passes, of the first pass (log2), number of passes
};
__host__ __device__ constexpr __forceinline__ FftPasses fft_plan(int log2_n, int max_radix) {
  const int p8 = (log2_n + 2) / 3, p16 = (log2_n + 3) / 4;
  const int log2_r = max_radix >= 16 && p16 < p8 ? 4 : 3;
  const int first = log2_n % log2_r ? log2_n % log2_r : log2_r;
  return {log2_r, first, (log2_n + log2_r - 1) / log2_r};
}
// Host side: the twiddle table (fft_twiddle_count(n) entries, computed in double, stored in float) for transforms of
// n points planned with passes of at most max_radix (the kernel's MaxRadix: the table follows the plan). Pass by pass
// (pass_twiddles): w_k = exp(-2 pi i k / (ns R)) at [ns + k] and, for radix 16, w_k^4 at [n / 8 + ns + k], k < ns;
// regions [ns, 2 ns) are disjoint and end by 2 n / R <= n / 4. The lanes of a warp read consecutive k: no bank
// conflicts. (One table exp(-2 pi i m / n) read at m = k << shift put 16 lanes on one bank pair in the second
// radix-16 pass of 4,096 points: 8.75x the conflict-free count of twiddle wavefronts, 37 % of conv_output_blocks'
// shared-load wavefronts in run 8; bench/smem_bank_conflicts.py.) The values are the same floats as that table's.
inline std::vector<float2> fft_twiddles(int n, int max_radix) {
  int log2_n = 0;
  while ((1 << log2_n) < n) ++log2_n;
  std::vector<float2> tw(static_cast<size_t>(fft_twiddle_count(n)), make_float2(0.0f, 0.0f));
  const auto at = [&](int m) {  // exp(-2 pi i m / n)
    return make_float2(float(std::cos(2.0 * M_PI * m / n)), float(-std::sin(2.0 * M_PI * m / n)));
  };
  const FftPasses plan = fft_plan(log2_n, max_radix);
  int log2_ns = plan.first;
  for (int pass = 1; pass < plan.passes; ++pass, log2_ns += plan.log2_r) {
    const int ns = 1 << log2_ns, shift = log2_n - log2_ns - plan.log2_r;  // k / (ns R) = (k << shift) / n
    for (int k = 0; k < ns; ++k) {
      tw[size_t(ns + k)] = at(k << shift);
      if (plan.log2_r == 4) tw[size_t(n / 8 + ns + k)] = at(k << (shift + 2));
    }
  }
  return tw;
}

// MaxRadix is a template parameter so that a radix-8 kernel does not carry the radix-16 code and its registers.
template <int MaxRadix, typename Load, typename Store>
__device__ inline void fft_any_pass(int log2_r, Load load, Store store, const float2* tw, int log2_n, int log2_ns,
                                    int count, bool conj_in, bool conj_out) {
  if constexpr (MaxRadix >= 16) {
    if (log2_r == 4) fft_pass<16>(load, store, tw, log2_n, log2_ns, count, conj_in, conj_out);
  }
  if (log2_r == 3) fft_pass<8>(load, store, tw, log2_n, log2_ns, count, conj_in, conj_out);
  if (log2_r == 2) fft_pass<4>(load, store, tw, log2_n, log2_ns, count, conj_in, conj_out);
  if (log2_r == 1) fft_pass<2>(load, store, tw, log2_n, log2_ns, count, conj_in, conj_out);
}

// Which butterflies of a transform's last pass run: every one (AllItems), or only those whose outputs the store
// keeps (a subset is only a saving: the others' outputs must all be ones the store drops). item(u, per) is the u-th
// of count(per) of the per = n / R butterflies.
struct AllItems {
  __device__ __forceinline__ int count(int per) const { return per; }
  __device__ __forceinline__ int item(int u, int) const { return u; }
};

// Butterfly j of transform c of a pass with n = 2^LOG2_N and ns = 2^LOG2_NS known at compile time: its R values read,
// twiddled and transformed in v...
template <int R, int LOG2_N, int LOG2_NS, typename Load>
__device__ __forceinline__ void fixed_butterfly(Load load, PassTwiddles ptw, int c, int j, bool conj_in, bool conj_out,
                                                float2* v) {
  constexpr int log2_per = LOG2_N - log2_radix<R>;
  if constexpr (std::is_same<Load, SharedLoad>::value) {
    const float2* row = load.buf + c * load.stride;
    const int sj = fft_slot(j);
BSIM_UNROLL
    for (int r = 0; r < R; ++r) v[r] = row[sj ^ fft_slot(r << log2_per)];
  } else {
BSIM_UNROLL
    for (int r = 0; r < R; ++r) v[r] = load(c, j + (r << log2_per));
  }
  if (conj_in) {
BSIM_UNROLL
    for (int r = 0; r < R; ++r) v[r].y = -v[r].y;
  }
  twiddle_and_dft<R>(v, ptw, j & ((1 << LOG2_NS) - 1));
  if (conj_out) {
BSIM_UNROLL
    for (int r = 0; r < R; ++r) v[r].y = -v[r].y;
  }
}
// ... and its results stored: value r to index d + r ns, d = (j - k) R + k, k = j mod ns.
template <int R, int LOG2_NS, typename Store>
__device__ __forceinline__ void fixed_butterfly_store(Store store, int c, int j, const float2* v) {
  constexpr int log2_r = log2_radix<R>;
  const int k = j & ((1 << LOG2_NS) - 1), d = ((j - k) << log2_r) + k;  // d's bits and r << LOG2_NS's are disjoint
  if constexpr (std::is_same<Store, SharedStore>::value) {
    float2* row = store.buf + c * store.stride;
    const int sd = fft_slot(d);
BSIM_UNROLL
    for (int r = 0; r < R; ++r) row[sd ^ fft_slot(r << LOG2_NS)] = v[r];
  } else {
BSIM_UNROLL
    for (int r = 0; r < R; ++r) store(c, d + (r << LOG2_NS), v[r]);
  }
}
// fft_pass for n = 2^LOG2_N known at compile time (the kernels' usual sizes: smem_fft_io<MaxRadix, LOG2_N>):
// the plan and every pass's shifts and masks are constants, and the shared-memory slots of a butterfly's R values
// are fft_slot(j) XOR a constant per value, where fft_pass recomputes the swizzle of every index (two shifts and
// two logic operations more per value; the passes are issue-bound). Same arithmetic, same results.
template <int R, int LOG2_N, int LOG2_NS, typename Load, typename Store, typename Items = AllItems>
__device__ __forceinline__ void fft_pass_fixed(Load load, Store store, const float2* tw, int count, bool conj_in,
                                               bool conj_out, Items items = {}) {
  constexpr int log2_r = log2_radix<R>;
  constexpr int log2_per = LOG2_N - log2_r, per = 1 << log2_per;
  const PassTwiddles ptw = pass_twiddles(tw, LOG2_N, LOG2_NS);  // constant offsets
  constexpr bool all = std::is_same<Items, AllItems>::value;
  const int per_c = all ? per : items.count(per);  // butterflies run per transform
  for (int item = threadIdx.x; item < count * per_c; item += blockDim.x) {
    int c, j;
    if constexpr (all) {
      c = item >> log2_per, j = item & (per - 1);
    } else {
      c = item / per_c, j = items.item(item - c * per_c, per);
    }
    float2 v[R];
    fixed_butterfly<R, LOG2_N, LOG2_NS>(load, ptw, c, j, conj_in, conj_out, v);
    fixed_butterfly_store<R, LOG2_NS>(store, c, j, v);
  }
}
// Pass P of the fixed plan and the ones after it, each followed by a barrier (buffers as smem_fft_io's).
template <int LOG2_N, int MaxRadix, int P, typename Load, typename Store, typename Items = AllItems>
__device__ __forceinline__ void fft_passes_fixed(Load load, Store store, float2* a, float2* b, const float2* tw,
                                                 int count, bool inverse, Items last_items = {}) {
  constexpr FftPasses plan = fft_plan(LOG2_N, MaxRadix);
  constexpr int log2_r = P == 0 ? plan.first : plan.log2_r;
  constexpr int log2_ns = P == 0 ? 0 : plan.first + (P - 1) * plan.log2_r;
  constexpr bool last = P == plan.passes - 1;
  constexpr int stride = fft_stride(1 << LOG2_N);
  if constexpr (P == 0 && last) {
    fft_pass_fixed<1 << log2_r, LOG2_N, log2_ns>(load, store, tw, count, inverse, inverse);
  } else if constexpr (P == 0) {
    fft_pass_fixed<1 << log2_r, LOG2_N, log2_ns>(load, SharedStore{a, stride}, tw, count, inverse, false);
  } else if constexpr (last) {  // ns = n / R here: butterfly j writes j + r n / R
    fft_pass_fixed<1 << log2_r, LOG2_N, log2_ns>(SharedLoad{P % 2 ? a : b, stride}, store, tw, count, false, inverse,
                                                 last_items);
  } else {
    fft_pass_fixed<1 << log2_r, LOG2_N, log2_ns>(SharedLoad{P % 2 ? a : b, stride}, SharedStore{P % 2 ? b : a, stride},
                                                 tw, count, false, false);
  }
  __syncthreads();
  if constexpr (!last) fft_passes_fixed<LOG2_N, MaxRadix, P + 1>(load, store, a, b, tw, count, inverse, last_items);
}

// In place, for n = 2^LOG2_N fixed and at most one butterfly per thread in every pass (blockDim.x >=
// fft_in_place_threads<LOG2_N, MaxRadix>(count)): a thread holds its butterfly's R values in registers from reading
// them to writing the results back into the same buffer, a barrier between, so that one buffer serves where the
// passes above ping-pong between two: half their shared memory, for one barrier more per pass. (The convolution's
// 4,096-point kernels: 41 instead of 74 kB a block, 4 blocks of 256 threads an SM instead of 3.)
template <int LOG2_N, int MaxRadix>
__host__ __device__ constexpr int fft_in_place_threads(int count) {
  return count << (LOG2_N - fft_plan(LOG2_N, MaxRadix).first);  // the first pass has the smallest radix
}
template <int R, int LOG2_N, int LOG2_NS, bool Sync, typename Load, typename Store>
__device__ __forceinline__ void fft_pass_in_place(Load load, Store store, const float2* tw, int count, bool conj_in,
                                                  bool conj_out) {
  constexpr int log2_per = LOG2_N - log2_radix<R>;
  const int item = threadIdx.x, c = item >> log2_per, j = item & ((1 << log2_per) - 1);
  const bool active = item < (count << log2_per);
  float2 v[R];
  if (active) fixed_butterfly<R, LOG2_N, LOG2_NS>(load, pass_twiddles(tw, LOG2_N, LOG2_NS), c, j, conj_in, conj_out, v);
  if constexpr (Sync) __syncthreads();  // every value of the buffer read before any is overwritten
  if (active) fixed_butterfly_store<R, LOG2_NS>(store, c, j, v);
}
// Pass P of the fixed plan in place in buf and the ones after it, each followed by a barrier. A pass that reads and
// writes shared memory waits between the two; one that reads the caller's functor or writes to it does not.
template <int LOG2_N, int MaxRadix, int P, typename Load, typename Store>
__device__ __forceinline__ void fft_passes_in_place(Load load, Store store, float2* buf, const float2* tw, int count,
                                                    bool inverse) {
  constexpr FftPasses plan = fft_plan(LOG2_N, MaxRadix);
  constexpr int R = 1 << (P == 0 ? plan.first : plan.log2_r);
  constexpr int log2_ns = P == 0 ? 0 : plan.first + (P - 1) * plan.log2_r;
  constexpr bool last = P == plan.passes - 1;
  constexpr bool shared_load = std::is_same<Load, SharedLoad>::value, shared_store = std::is_same<Store, SharedStore>::value;
  const SharedLoad in{buf, fft_stride(1 << LOG2_N)};
  const SharedStore out{buf, fft_stride(1 << LOG2_N)};
  if constexpr (P == 0 && last) {
    fft_pass_in_place<R, LOG2_N, log2_ns, shared_load && shared_store>(load, store, tw, count, inverse, inverse);
  } else if constexpr (P == 0) {
    fft_pass_in_place<R, LOG2_N, log2_ns, shared_load>(load, out, tw, count, inverse, false);
  } else if constexpr (last) {
    fft_pass_in_place<R, LOG2_N, log2_ns, shared_store>(in, store, tw, count, false, inverse);
  } else {
    fft_pass_in_place<R, LOG2_N, log2_ns, true>(in, out, tw, count, false, false);
  }
  __syncthreads();
  if constexpr (!last) fft_passes_in_place<LOG2_N, MaxRadix, P + 1>(load, store, buf, tw, count, inverse);
}
// smem_fft_io in place: `count` transforms of n = 2^LOG2_N points in buf (fft_stride(n) float2 each), the first pass
// reading load(c, i), the last writing store(c, k, X_k); blockDim.x >= fft_in_place_threads<LOG2_N, MaxRadix>(count).
// Starts and ends with a barrier; a store into shared memory may target buf (SharedStore{buf, stride}: the result
// in natural order there). A load or store functor other than SharedLoad / SharedStore must not touch buf (no
// barrier separates its pass's reads from its writes).
template <int MaxRadix, int LOG2_N, typename Load, typename Store>
__device__ inline void smem_fft_in_place(Load load, Store store, float2* buf, const float2* tw, int count, bool inverse) {
  static_assert(LOG2_N > 0, "in place needs the size at compile time");
#if !defined(__CUDACC__)  // the emulated backend says so where a block is too small (the device would compute garbage)
  if (int(blockDim.x) < fft_in_place_threads<LOG2_N, MaxRadix>(count))
    throw emu::KernelFault("smem_fft_in_place: " + std::to_string(blockDim.x) + " threads for " +
                           std::to_string(fft_in_place_threads<LOG2_N, MaxRadix>(count)) + " butterflies in a pass");
#endif
  __syncthreads();
  fft_passes_in_place<LOG2_N, MaxRadix, 0>(load, store, buf, tw, count, inverse);
}

// `count` transforms of n = 2^log2_n points (n >= 8): value i of transform c comes from load(c, i) and its
// result goes to store(c, k, X_k), both in natural order; between passes the values go through the
// shared-memory buffers a and b (fft_stride(n) float2 per transform each; pass p writes a for even p, b for
// odd). Forward X_k = sum x_m exp(-2 pi i k m / n), or with `inverse` the unnormalised sum with exp(+...)
// (computed as conj(FFT(conj x))). tw: fft_twiddles(n, MaxRadix), in shared memory. Starts and
// ends with a barrier; a store into shared memory must not target the buffer the last pass reads (see
// smem_fft). last_items: the butterflies of the last pass to run when n is fixed and the plan has several passes
// (there butterfly j of the last pass writes outputs j + r n / R); every one otherwise.
template <int MaxRadix = 8, int LOG2_N = 0, typename Load, typename Store, typename Items = AllItems>
__device__ inline void smem_fft_io(Load load, Store store, float2* a, float2* b, const float2* tw, int log2_n,
                                   int count, bool inverse, Items last_items = {}) {
  __syncthreads();
  if constexpr (LOG2_N > 0) {  // n fixed at compile time (log2_n must equal it)
    fft_passes_fixed<LOG2_N, MaxRadix, 0>(load, store, a, b, tw, count, inverse, last_items);
    return;
  }
  const FftPasses plan = fft_plan(log2_n, MaxRadix);
  const int stride = fft_stride(1 << log2_n);
  if (plan.passes == 1) {
    fft_any_pass<MaxRadix>(plan.first, load, store, tw, log2_n, 0, count, inverse, inverse);
    __syncthreads();
    return;
  }
  fft_any_pass<MaxRadix>(plan.first, load, SharedStore{a, stride}, tw, log2_n, 0, count, inverse, false);
  __syncthreads();
  int log2_ns = plan.first;
  for (int pass = 1; pass < plan.passes; ++pass) {
    const SharedLoad in{pass % 2 ? a : b, stride};
    if (pass == plan.passes - 1) {
      fft_any_pass<MaxRadix>(plan.log2_r, in, store, tw, log2_n, log2_ns, count, false, inverse);
    } else {
      fft_any_pass<MaxRadix>(plan.log2_r, in, SharedStore{pass % 2 ? b : a, stride}, tw, log2_n, log2_ns, count, false, false);
    }
    __syncthreads();
    log2_ns += plan.log2_r;
  }
}

// The buffer (a or b) that smem_fft_io's last pass does not read: where a result kept in shared memory goes.
__device__ __forceinline__ float2* fft_result_buffer(float2* a, float2* b, int log2_n, int max_radix = 8) {
  return fft_plan(log2_n, max_radix).passes % 2 ? a : b;
}

// Transforms whose input comes from load(c, i) and whose result stays in shared memory, natural order, in the
// returned buffer (a or b).
template <int MaxRadix = 8, int LOG2_N = 0, typename Load>
__device__ inline float2* smem_fft_load(Load load, float2* a, float2* b, const float2* tw, int log2_n, int count,
                                        bool inverse) {
  float2* result = fft_result_buffer(a, b, log2_n, MaxRadix);
  smem_fft_io<MaxRadix, LOG2_N>(load, SharedStore{result, fft_stride(1 << log2_n)}, a, b, tw, log2_n, count, inverse);
  return result;
}

// Transforms in place in shared memory: the input in buffer a (natural order), b scratch; returns the buffer
// holding the result. (The input is read once, by the first pass, which writes b.)
template <int MaxRadix = 8>
__device__ inline float2* smem_fft(float2* a, float2* b, const float2* tw, int log2_n, int count, bool inverse) {
  return smem_fft_load<MaxRadix>(SharedLoad{a, fft_stride(1 << log2_n)}, b, a, tw, log2_n, count, inverse);
}

// A block's shared-memory workspace for `count` transforms of n points: the two buffers the passes ping-pong
// between (or, buffers = 1, the one of smem_fft_in_place: b = a) and the twiddle table, copied in from global
// memory (visible after smem_fft*'s opening barrier).
struct FftWorkspace {
  float2 *a, *b, *tw;
};
inline int fft_workspace_bytes(int n, int count, int buffers = 2) {
  return int(sizeof(float2)) * (buffers * count * fft_stride(n) + fft_twiddle_count(n));
}
__device__ inline FftWorkspace fft_workspace(float2* shared, int n, int count, const float2* twiddle,
                                             int buffers = 2) {
  float2* b = shared + (buffers - 1) * count * fft_stride(n);
  FftWorkspace w{shared, b, b + count * fft_stride(n)};
  for (int i = threadIdx.x; i < fft_twiddle_count(n); i += blockDim.x) w.tw[i] = twiddle[i];
  return w;
}

// Two real signals a, b transformed as one complex signal z = a + i b (padded layout): their spectra at bin k
// (0..n/2).
__device__ __forceinline__ void split_two_real(const float2* z, int n, int k, float2& a, float2& b) {
  const float2 zk = z[fft_slot(k)], zc = z[fft_slot((n - k) & (n - 1))];
  a = make_float2(0.5f * (zk.x + zc.x), 0.5f * (zk.y - zc.y));
  b = make_float2(0.5f * (zk.y + zc.y), -0.5f * (zk.x - zc.x));
}

// Host side: the instance of an STFT kernel template for n = 2^log2_n, pick(std::integral_constant<int, LOG2_N>)
// returning its address: fixed-size passes for the sizes the kernels are compiled for (256, 512 (the default) and
// 1024 points), the general instance (LOG2_N = 0) for any other.
template <typename Pick>
inline auto stft_kernel_instance(int log2_n, Pick pick) {
  switch (log2_n) {
    case 8: return pick(std::integral_constant<int, 8>{});
    case 9: return pick(std::integral_constant<int, 9>{});
    case 10: return pick(std::integral_constant<int, 10>{});
    default: return pick(std::integral_constant<int, 0>{});
  }
}

// Frames t0 .. t0+F-1 of a binaural pair as the STFT of sim/features.h takes them (samples [t hop, t hop + win)
// times the window, zero-padded to n), both ears as one complex signal (left + i right) per frame, read
// straight from global memory by the first pass and transformed with a and b (F x fft_stride(n) float2 each).
// Returns the buffer holding Z_k = L_k + i R_k (split_two_real gives the ears). Frames past n_frames are zero.
template <int LOG2_N = 0>  // > 0: n fixed at compile time (smem_fft_io)
__device__ inline float2* stft_pair_frames(const float* left, const float* right, const float* window,
                                           const float2* tw, int n, int log2_n, int win, int hop, int n_frames,
                                           int t0, int F, float2* a, float2* b) {
  (void)n;
  const auto frame = [=](int f, int i) {
    const int t = t0 + f;
    if (t >= n_frames || i >= win) return make_float2(0.0f, 0.0f);
    const float w = window[i];
    return make_float2(left[(size_t)t * hop + i] * w, right[(size_t)t * hop + i] * w);
  };
  return smem_fft_load<8, LOG2_N>(frame, a, b, tw, log2_n, F, false);
}

}  // namespace bsim::cuda
