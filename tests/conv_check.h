// One check for batched convolution computed another way (GPU, emulated kernels) against sim/fft.h's
// convolve_many: NMSE below -100 dB per example and filter (float32 FFTs in another order).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "sim/fft.h"

namespace bsim::test {

inline double nmse_db(const float* a, const float* ref, size_t n) {
  double e = 0, r = 0;
  for (size_t i = 0; i < n; ++i) e += double(a[i] - ref[i]) * (a[i] - ref[i]), r += double(ref[i]) * ref[i];
  return 10 * std::log10(e / std::max(r, 1e-300));
}

// out [B][F][T] = x [B][T] convolved with h [B][F][L], first T samples.
inline void expect_convolution_matches_cpu(const std::vector<float>& out, const std::vector<float>& x,
                                           const std::vector<float>& h, int B, int F, int T, int L) {
  for (int b = 0; b < B; ++b) {
    std::vector<float> ref(size_t(F) * T);
    std::vector<const float*> hs;
    std::vector<float*> outs;
    for (int f = 0; f < F; ++f) hs.push_back(h.data() + (size_t(b) * F + f) * L), outs.push_back(ref.data() + size_t(f) * T);
    convolve_many(x.data() + size_t(b) * T, T, hs, L, T, outs);
    for (int f = 0; f < F; ++f)
      EXPECT_LT(nmse_db(out.data() + (size_t(b) * F + f) * T, ref.data() + size_t(f) * T, size_t(T)), -100.0)
          << "example " << b << " filter " << f;
  }
}

}  // namespace bsim::test
