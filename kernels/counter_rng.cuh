// Counter-based normal random numbers for kernels: value i of stream `seed` is a pure function of (seed, i),
// so any thread can draw its own numbers in registers, in any order, with no state in memory.
#pragma once

namespace bsim::cuda {

__device__ inline unsigned long long mix64(unsigned long long x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Two independent standard normals from a counter (Box-Muller on two hashed uniforms). In double: a float
// version from one hash (0f07410, to cut the spectra kernels' instructions) made one scene's point noise, a dull
// recording through its own BRIR, 1.2 dB brighter on average over eight tail seeds than with this one (means
// +1.9 against +0.7 dB from the CPU's draw, each +-0.4): not explained, so not kept; GpuPipeline.OtherConfigurations-
// RenderTheCpuPlan (five HRTF sets, example 40) fails with it.
__device__ inline float2 normal2(unsigned long long seed, unsigned long long counter) {
  const unsigned long long a = mix64(seed ^ mix64(counter * 2 + 1)), b = mix64(seed ^ mix64(counter * 2 + 2));
  const double u1 = fmax(double(a >> 11) * 0x1.0p-53, 1e-300), u2 = double(b >> 11) * 0x1.0p-53;
  const double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
  return make_float2(float(r * cos(t)), float(r * sin(t)));
}

}  // namespace bsim::cuda
