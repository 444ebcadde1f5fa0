// Windowed-sinc fractional delay: the one interpolation kernel used for HRIR re-delaying, image-source
// impulses (CPU and, later, CUDA). Hann window of half width w+1 centred on the true delay.
#pragma once
#include <cmath>

#include "sim/host_device.h"

namespace bsim {

// Tap k (k = -w..w) of the filter that delays by `frac` in [0, 1): sinc(k - frac) * hann((k - frac) / (w + 1)).
// sin(pi (k - frac)) = -(-1)^k sin(pi frac), so callers pass sin(pi frac) once instead of a sine per tap.
BSIM_HD inline float frac_delay_tap(int k, float frac, int half_width, float sin_pi_frac) {
  const float x = float(k) - frac;
  const float pi = 3.14159265358979f;
  const float win_arg = x / float(half_width + 1);
  if (win_arg <= -1.0f || win_arg >= 1.0f) return 0.0f;
  const float win = 0.5f * (1.0f + cosf(pi * win_arg));
  if (fabsf(x) < 1e-6f) return win;
  const float sin_pi_x = (k & 1) ? sin_pi_frac : -sin_pi_frac;
  return win * sin_pi_x / (pi * x);
}
BSIM_HD inline float frac_delay_tap(int k, float frac, int half_width) {
  return frac_delay_tap(k, frac, half_width, sinf(3.14159265358979f * frac));
}

// Adds gain * h (n_taps) delayed by `delay` samples (any real >= 0) into out[0, len). Samples falling
// outside [0, len) are dropped. Cost: n_taps * (2w+1) multiply-adds.
inline void add_delayed(float* out, int len, const float* h, int n_taps, double delay, float gain,
                        int half_width) {
  const double fl = std::floor(delay);
  const int n0 = int(fl);
  const float frac = float(delay - fl);
  float taps[2 * 128 + 1];
  const float sin_pi_frac = std::sin(3.14159265358979f * frac);
  for (int k = -half_width; k <= half_width; ++k)
    taps[k + half_width] = gain * frac_delay_tap(k, frac, half_width, sin_pi_frac);
  for (int k = -half_width; k <= half_width; ++k) {
    const float t = taps[k + half_width];
    const int base = n0 + k;
    int i_lo = base < 0 ? -base : 0;
    int i_hi = len - base < n_taps ? len - base : n_taps;
    for (int i = i_lo; i < i_hi; ++i) out[base + i] += t * h[i];
  }
}

}  // namespace bsim
