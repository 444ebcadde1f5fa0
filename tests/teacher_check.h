// One tolerance for teacher features computed another way (GPU, emulated kernels) against sim/features.h:
// mean absolute difference below 1e-4 (1e-2 for the dB-valued ILD kinds) and at most 0.5 % of values off by
// more than 1e-2 — the phase of near-empty bins and PHAT of silent frames are ill-conditioned in float32 on
// either side, so a few values may differ much while the rest agree to rounding.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "sim/features.h"

namespace bsim::test {

// `features` [B][F][frames] of `audio` [B][2][T] against the CPU's teacher_features.
inline void expect_teacher_matches_cpu(const std::vector<float>& features, const std::vector<float>& audio, int B,
                                       int T, const FeatureConfig& fc) {
  const size_t per = features.size() / size_t(B);
  const bool db = fc.teacher == "ild" || fc.teacher == "ipd_ild";
  for (int b = 0; b < B; ++b) {
    SCOPED_TRACE("example " + std::to_string(b));
    std::vector<float> ref;
    teacher_features(audio.data() + size_t(b) * 2 * T, audio.data() + (size_t(b) * 2 + 1) * T, T, fc, ref);
    ASSERT_EQ(ref.size(), per);
    double mad = 0;
    size_t off = 0;
    for (size_t i = 0; i < per; ++i) {
      ASSERT_TRUE(std::isfinite(features[size_t(b) * per + i])) << i;
      const double d = std::fabs(double(features[size_t(b) * per + i]) - ref[i]);
      mad += d, off += d > 1e-2;
    }
    EXPECT_LT(mad / double(per), db ? 1e-2 : 1e-4);
    EXPECT_LT(double(off) / double(per), 0.005);
  }
}

}  // namespace bsim::test
