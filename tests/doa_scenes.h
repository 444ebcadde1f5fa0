// Test scenes with a known direction for the DoA estimators: white noise from each azimuth through the HRTF
// set's HRIRs, a quieter second source 100 degrees away and sensor noise. [B][2][T].
#pragma once
#include <vector>

#include "io/hrtf.h"
#include "sim/rng.h"

namespace bsim::test {

inline std::vector<float> directional_scenes(const HrirGrid& grid, const std::vector<double>& azimuths, int T) {
  Rng rng(41, 0, Stream::noise);
  std::vector<float> audio(azimuths.size() * 2 * size_t(T), 0.0f);
  for (size_t b = 0; b < azimuths.size(); ++b) {
    std::vector<float> s(static_cast<size_t>(T)), s2(static_cast<size_t>(T));
    for (auto& v : s) v = float(rng.normal());
    for (auto& v : s2) v = float(0.3 * rng.normal());
    for (int ear = 0; ear < 2; ++ear) {
      float* out = audio.data() + (b * 2 + size_t(ear)) * size_t(T);
      const float* h = grid.at(grid.index(azimuths[b], 0.0), ear);
      const float* h2 = grid.at(grid.index(azimuths[b] + 100.0, 0.0), ear);
      for (int t = 0; t < T; ++t) {
        double acc = 0.05 * rng.normal();
        for (int k = 0; k < grid.n_taps && k <= t; ++k) acc += double(h[k]) * s[size_t(t - k)] + double(h2[k]) * s2[size_t(t - k)];
        out[t] = float(acc);
      }
    }
  }
  return audio;
}

}  // namespace bsim::test
