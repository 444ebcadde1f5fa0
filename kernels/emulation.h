// Lets kernel headers (kernels/*.cuh that hold device code only) compile as plain C++, so that CPU tests run
// the kernel bodies sequentially: the launch loops over blocks with one thread per block. Kernels written in
// the strided-loop style (for i = threadIdx.x; i < n; i += blockDim.x, phases separated by __syncthreads)
// then compute exactly what the GPU computes, up to float rounding; races and occupancy are not modelled
// (compute-sanitizer's racecheck covers those on the device). Under nvcc this header is empty.
#pragma once
#if !defined(__CUDACC__)
#include <math.h>  // the C math functions (sinf, hypot, ...) in the global namespace, as device code calls them
#include <stdlib.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static  // one thread per block, blocks in order: one copy serves every block in turn

struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace bsim::emu {
inline EmuDim3 blockIdx, threadIdx, blockDim{1, 1, 1}, gridDim{1, 1, 1};
inline std::vector<unsigned char> dynamic_shared(1 << 20);

// Runs kernel(args...) over a (gx, gy, gz) grid, one thread per block, blocks in order.
template <typename Kernel, typename... Args>
void launch3(unsigned gx, unsigned gy, unsigned gz, Kernel kernel, Args... args) {
  gridDim = {gx, gy, gz};
  blockDim = {1, 1, 1};
  threadIdx = {0, 0, 0};
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x) {
        blockIdx = {x, y, z};
        kernel(args...);
      }
}
template <typename Kernel, typename... Args>
void launch(unsigned gx, unsigned gy, Kernel kernel, Args... args) {
  launch3(gx, gy, 1u, kernel, args...);
}
}  // namespace bsim::emu

using bsim::emu::blockDim;
using bsim::emu::blockIdx;
using bsim::emu::gridDim;
using bsim::emu::threadIdx;
inline void __syncthreads() {}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r = (r << 1) | ((x >> i) & 1u);
  return r;
}
template <typename T>
inline T atomicAdd(T* p, T v) {  // int, float, double
  const T old = *p;
  *p += v;
  return old;
}
// Rounding intrinsics (the host rounds each operation to nearest already) and float16 by the CPU's conversion
// (io/shard.h; the tests link bsim_io).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
namespace bsim {
uint16_t float_to_half(float f);
}
struct __half {
  uint16_t bits;
};
inline __half __float2half_rn(float f) { return {bsim::float_to_half(f)}; }
#define BSIM_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(bsim::emu::dynamic_shared.data())
#define BSIM_UNROLL
#else
#define BSIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define BSIM_UNROLL _Pragma("unroll")
#endif
