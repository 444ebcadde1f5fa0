// doa/: classic estimators on cases with a known answer.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>

#include "doa/classic.h"
#include "io/error.h"
#include "sim/brir.h"
#include "sim/fft.h"
#include "sim/rng.h"

using namespace bsim;

namespace {
const HrirGrid& kemar() {
  static const HrirGrid g = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 16000.0, 1.0, 5.0);
  return g;
}

// White noise through the grid HRIR of `az` (elevation 0), plus independent noise at `snr_db` per ear.
void render(double az, double snr_db, std::vector<float>& l, std::vector<float>& r, uint64_t seed) {
  const HrirGrid& g = kemar();
  const int n = 16000;
  Rng rng(seed, 0, Stream::noise);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = float(rng.normal());
  l.assign(static_cast<size_t>(n), 0.0f), r.assign(static_cast<size_t>(n), 0.0f);
  const int idx = g.index(az, 0);
  convolve_many(x.data(), n, {g.at(idx, 0), g.at(idx, 1)}, g.n_taps, n, {l.data(), r.data()});
  double e = 0;
  for (int i = 0; i < n; ++i) e += double(l[size_t(i)]) * l[size_t(i)] + double(r[size_t(i)]) * r[size_t(i)];
  const double sigma = std::sqrt(e / (2.0 * n) / std::pow(10.0, snr_db / 10.0));
  for (int i = 0; i < n; ++i) l[size_t(i)] += float(sigma * rng.normal()), r[size_t(i)] += float(sigma * rng.normal());
}
}  // namespace

TEST(ClassicDoa, ItdTableRisesFromRightToLeft) {
  const ClassicDoa doa(kemar(), FeatureConfig{}, false, 1.0);
  const auto& itd = doa.itd_table();
  const auto& az = doa.candidates();
  ASSERT_EQ(az.size(), 181u);
  EXPECT_LT(itd.front(), -8.0);  // source at -90 (right): right ear leads by ~0.65 ms = ~10 samples
  EXPECT_GT(itd.back(), 8.0);
  EXPECT_NEAR(itd[90], 0.0, 0.75);
  for (size_t i = 20; i + 20 < itd.size(); i += 10) EXPECT_LT(itd[i], itd[i + 10]) << az[i];
}

TEST(ClassicDoa, EveryMethodFindsAKnownDirection) {
  const ClassicDoa doa(kemar(), FeatureConfig{}, false, 1.0);
  // Tolerances: SRP-PHAT and MUSIC 2 deg; GCC-PHAT 5 deg within +-60 and 12 deg beyond (the ITD flattens
  // towards the sides, so a 1/8-sample lag error spans several degrees there).
  for (double az : {-80.0, -60.0, -35.0, -10.0, 0.0, 15.0, 40.0, 60.0, 85.0}) {
    std::vector<float> l, r;
    render(az, 30.0, l, r, uint64_t(az + 100));
    SCOPED_TRACE(az);
    EXPECT_NEAR(doa.estimate(ClassicMethod::srp_phat, l.data(), r.data(), int(l.size())), az, 2.0);
    EXPECT_NEAR(doa.estimate(ClassicMethod::music, l.data(), r.data(), int(l.size())), az, 2.0);
    for (ClassicMethod m : {ClassicMethod::gcc_phat, ClassicMethod::gcc_phat_frames})
      EXPECT_NEAR(doa.estimate(m, l.data(), r.data(), int(l.size())), az, std::fabs(az) <= 60 ? 5.0 : 12.0)
          << classic_method_name(m);
    EXPECT_NEAR(doa.estimate(ClassicMethod::srp_phat_frames, l.data(), r.data(), int(l.size())), az, 2.0);
  }
}

// A talker heard a third of the time (0.2 s on, 0.4 s off) and a steady noise source from elsewhere, 10 dB
// below the talker over the whole clip: Knapp and Carter's PHAT (cross-power averaged, then whitened) and
// MUSIC follow the talker, whose frames carry 30x the noise power; whitening every frame first gives the
// noise-only frames two votes in three and the peak goes to the noise (the *_frames variants).
TEST(ClassicDoa, WhiteningAfterAveragingFollowsAnIntermittentTalkerPastASteadyNoise) {
  const HrirGrid& g = kemar();
  const ClassicDoa doa(g, FeatureConfig{}, false, 1.0);
  const int n = 32000;
  const double talker = 40.0, noise = -50.0;
  Rng rng(11, 0, Stream::noise);
  std::vector<float> s(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) s[size_t(i)] = (i / 3200) % 3 == 0 ? float(rng.normal()) : 0.0f;
  for (auto& x : v) x = float(rng.normal());
  std::vector<float> sl(s.size()), sr(s.size()), vl(s.size()), vr(s.size());
  const int is = g.index(talker, 0), in = g.index(noise, 0);
  convolve_many(s.data(), n, {g.at(is, 0), g.at(is, 1)}, g.n_taps, n, {sl.data(), sr.data()});
  convolve_many(v.data(), n, {g.at(in, 0), g.at(in, 1)}, g.n_taps, n, {vl.data(), vr.data()});
  double es = 0, ev = 0;
  for (int i = 0; i < n; ++i) es += double(sl[size_t(i)]) * sl[size_t(i)] + double(sr[size_t(i)]) * sr[size_t(i)],
                              ev += double(vl[size_t(i)]) * vl[size_t(i)] + double(vr[size_t(i)]) * vr[size_t(i)];
  const float gain = float(std::sqrt(es / ev / 10.0));  // 10 dB SNR over the clip
  std::vector<float> l(s.size()), r(s.size());
  for (int i = 0; i < n; ++i) l[size_t(i)] = sl[size_t(i)] + gain * vl[size_t(i)], r[size_t(i)] = sr[size_t(i)] + gain * vr[size_t(i)];
  const auto est = [&](ClassicMethod m) { return doa.estimate(m, l.data(), r.data(), n); };
  EXPECT_NEAR(est(ClassicMethod::gcc_phat), talker, 5.0);
  EXPECT_NEAR(est(ClassicMethod::srp_phat), talker, 2.0);
  EXPECT_NEAR(est(ClassicMethod::music), talker, 2.0);
  EXPECT_NEAR(est(ClassicMethod::gcc_phat_frames), noise, 5.0);
  EXPECT_NEAR(est(ClassicMethod::srp_phat_frames), noise, 2.0);
  // All methods on one STFT decide as each alone.
  const std::vector<ClassicMethod> all{ClassicMethod::music, ClassicMethod::gcc_phat, ClassicMethod::srp_phat_frames,
                                       ClassicMethod::srp_phat, ClassicMethod::gcc_phat_frames};
  const std::vector<double> together = doa.estimate(all, l.data(), r.data(), n);
  ASSERT_EQ(together.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(together[i], est(all[i])) << classic_method_name(all[i]);
}

// scores(): one per candidate, estimate() is its first maximum, and the pseudo-spectrum falls away from the
// source (the score 30 degrees off is clearly below the best).
TEST(ClassicDoa, ScoresPeakWhereTheEstimateIs) {
  const ClassicDoa doa(kemar(), FeatureConfig{}, false, 1.0);
  std::vector<float> l, r;
  render(25.0, 30.0, l, r, 3);
  const int n = int(l.size());
  for (int mi = 0; mi < kClassicMethods; ++mi) {
    const ClassicMethod m = ClassicMethod(mi);
    SCOPED_TRACE(classic_method_name(m));
    const std::vector<double> s = doa.scores(m, l.data(), r.data(), n);
    ASSERT_EQ(s.size(), doa.candidates().size());
    const size_t best = size_t(std::max_element(s.begin(), s.end()) - s.begin());
    EXPECT_EQ(doa.candidates()[best], doa.estimate(m, l.data(), r.data(), n));
    const double range = s[best] - *std::min_element(s.begin(), s.end());
    const size_t off = size_t(std::find(doa.candidates().begin(), doa.candidates().end(), -5.0) - doa.candidates().begin());
    ASSERT_LT(off, s.size());
    EXPECT_LT(s[off], s[best] - 0.05 * range);
  }
}

TEST(ClassicDoa, FullCircleSeparatesFrontAndBackWithSpectralCues) {
  const ClassicDoa doa(kemar(), FeatureConfig{}, true, 1.0);
  for (double az : {30.0, 150.0, -120.0}) {
    std::vector<float> l, r;
    render(az, 40.0, l, r, 7);
    SCOPED_TRACE(az);
    EXPECT_NEAR(doa.estimate(ClassicMethod::srp_phat, l.data(), r.data(), int(l.size())), az, 3.0);
  }
}

TEST(ClassicDoa, MethodNamesRoundTripAndUnknownOnesAreRejected) {
  for (int mi = 0; mi < kClassicMethods; ++mi)
    EXPECT_EQ(int(classic_method(classic_method_name(ClassicMethod(mi)))), mi);
  EXPECT_THROW(classic_method("beamformer"), InputError);
}
