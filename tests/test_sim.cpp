// sim/: image sources, BRIRs (physics checks), features, scene sampling and the example pipeline.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>

#include "io/audio.h"
#include "io/error.h"
#include "sim/brir.h"
#include "sim/features.h"
#include "sim/fft.h"
#include "sim/parallel.h"
#include "sim/pipeline.h"
#include "sim/rng.h"
#include "sim/room.h"
#include "sim/scene.h"
#include "sim/spectral_tilt.h"
#include "tests/temp_dir.h"

using namespace bsim;

namespace {

const std::string kKemar = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa";
constexpr double kC = 343.0, kFs = 16000.0;

const HrirGrid& kemar() {
  static const HrirGrid g = load_hrir_grid(kKemar, kFs, 2.0, 5.0);
  return g;
}
const DiffuseField& kemar_diffuse() {
  static const DiffuseField d = compute_diffuse_field(kemar());
  return d;
}

Shoebox room(double x, double y, double z, double t60) {
  Shoebox r;
  r.size_m = {x, y, z};
  const double b = reflection_coefficient(r.size_m, t60, AbsorptionModel::eyring, kC);
  for (double& v : r.beta) v = b;
  return r;
}

// T60 of x in the band [f_lo, f_hi]: a smooth (cos^2 on a log-frequency axis, no brick wall that would
// smear the direct sound over the decay) zero-padded FFT band-pass, then the Schroeder curve's -5 to
// -25 dB slope (T20).
double measured_t60(const std::vector<float>& x, double f_lo, double f_hi) {
  const int n = good_fft_size(2 * int(x.size()));
  RealFft fft(n);
  FloatVec buf(static_cast<size_t>(n), 0.0f);
  std::copy(x.begin(), x.end(), buf.begin());
  ComplexVec X(static_cast<size_t>(fft.bins()));
  fft.forward(buf.data(), X.data());
  const double fc = std::sqrt(f_lo * f_hi), span = std::log2(f_hi / fc) + 0.5;
  for (int k = 0; k < fft.bins(); ++k) {
    const double u = k == 0 ? 2.0 : std::fabs(std::log2(k * kFs / n / fc)) / span;
    X[k] *= float(u < 1 ? std::cos(0.5 * M_PI * u) * std::cos(0.5 * M_PI * u) : 0.0) / float(n);
  }
  fft.inverse(X.data(), buf.data());
  std::vector<double> edc(x.size());
  double acc = 0;
  for (size_t i = x.size(); i-- > 0;) acc += double(buf[i]) * buf[i], edc[i] = acc;
  std::vector<double> t, db;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = 10 * std::log10(edc[i] / edc[0] + 1e-30);
    if (v <= -5 && v >= -25) t.push_back(i / kFs), db.push_back(v);
  }
  const double mt = std::accumulate(t.begin(), t.end(), 0.0) / t.size();
  const double md = std::accumulate(db.begin(), db.end(), 0.0) / db.size();
  double num = 0, den = 0;
  for (size_t i = 0; i < t.size(); ++i) num += (t[i] - mt) * (db[i] - md), den += (t[i] - mt) * (t[i] - mt);
  return -60.0 / (num / den);
}

Config small_config() {
  Config c;
  c.clip_s = 1.0;
  c.room.length_m = {3, 6};
  c.room.width_m = {3, 6};
  c.room.t60_s = {0.2, 0.5};
  return c;
}

// The reverberant part of a BRIR channel: the response without its direct path. T60 is a property of
// the reverberant field; in dead rooms with the source near the head the direct sound is more than 5 dB
// above the rest and would bias a T20 fit that starts at -5 dB.
std::vector<float> reverberant_part(const Brir& b, int ear) {
  std::vector<float> r(b.response[ear]);
  for (size_t i = 0; i < r.size(); ++i) r[i] -= b.direct[ear][i];
  return r;
}

double energy(const float* x, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) e += double(x[i]) * x[i];
  return e;
}

}  // namespace

TEST(Room, ReflectionCoefficientFollowsEyringAndSabine) {
  const Vec3 L{6, 4, 3};
  const double V = 72, S = 2 * (24 + 18 + 12), k = 24 * std::log(10.0) / kC;
  EXPECT_NEAR(reflection_coefficient(L, 0.5, AbsorptionModel::sabine, kC), std::sqrt(1 - k * V / (S * 0.5)), 1e-12);
  EXPECT_NEAR(reflection_coefficient(L, 0.5, AbsorptionModel::eyring, kC), std::sqrt(std::exp(-k * V / (S * 0.5))), 1e-12);
  EXPECT_THROW(reflection_coefficient({10, 10, 4}, 0.05, AbsorptionModel::sabine, kC), InputError);
}

TEST(Room, FirstOrderImagesAreMirrorImages) {
  Shoebox r;
  r.size_m = {5, 4, 3};
  for (int w = 0; w < 6; ++w) r.beta[w] = 0.5 + 0.05 * w;
  const Vec3 s{1, 1, 1}, m{3, 2, 1.5};
  std::vector<ImageSource> im;
  ImageLimit lim;
  lim.max_order = 1;
  enumerate_images(r, s, m, lim, kC, im);
  ASSERT_EQ(im.size(), 7u);
  // Mirror of the source in the wall x = 5 is at x = 9 with gain beta_x1 / (4 pi d).
  bool found = false;
  for (const auto& i : im)
    if (std::fabs(i.pos_m.x - 9) < 1e-12 && std::fabs(i.pos_m.y - 1) < 1e-12 && std::fabs(i.pos_m.z - 1) < 1e-12) {
      const double d = std::sqrt(36 + 1 + 0.25);
      EXPECT_NEAR(i.gain, r.beta[1] / (4 * M_PI * d), 1e-12);
      EXPECT_NEAR(i.delay_s, d / kC, 1e-12);
      found = true;
    }
  EXPECT_TRUE(found);
  lim.max_order = 2;
  enumerate_images(r, s, m, lim, kC, im);
  EXPECT_EQ(im.size(), 25u);  // 1 + 6 + 18 images up to order 2 in 3-D
}

TEST(Brir, AnechoicDirectPathArrivesAtDistanceOverCWithOneOverRGain) {
  for (int delay_samples : {100, 200}) {
    const double d = kC * delay_samples / kFs;  // an integer-sample delay: the sinc reduces to one tap
    BrirRequest req;
    req.room = room(20, 20, 10, 0.5);
    req.anechoic = true;
    req.listener_m = {5, 10, 5};
    req.source_m = {5 + d, 10, 5};
    Rng rng(1, 0, Stream::tail);
    Brir b;
    render_brir(req, nullptr, nullptr, rng, b);
    ASSERT_EQ(b.channels, 1);
    const auto& h = b.response[0];
    const size_t peak = size_t(std::max_element(h.begin(), h.end(), [](float a, float c) { return std::fabs(a) < std::fabs(c); }) - h.begin());
    EXPECT_EQ(peak, size_t(delay_samples));
    EXPECT_NEAR(h[peak], 1.0 / (4 * M_PI * d), 1e-6);
    EXPECT_NEAR(energy(h.data(), h.size()), h[peak] * h[peak], 1e-9) << "nothing but the direct path";
  }
}

TEST(Brir, SourceOnTheLeftMakesTheLeftEarLeadAndLouder) {
  for (double az : {30.0, 60.0, 90.0, 120.0}) {
    SCOPED_TRACE(az);
    BrirRequest req;
    req.room = room(8, 8, 3, 0.5);
    req.anechoic = true;
    req.listener_m = {4, 4, 1.5};
    req.yaw_deg = 30;  // head turned: the azimuth is relative to the head, not the room
    const double a = (az + req.yaw_deg) * M_PI / 180;
    req.source_m = {4 + 2 * std::cos(a), 4 + 2 * std::sin(a), 1.5};
    Rng rng(1, 0, Stream::tail);
    Brir b;
    render_brir(req, &kemar(), &kemar_diffuse(), rng, b);
    EXPECT_NEAR(b.azimuth_deg, az, 1e-9);
    EXPECT_GT(energy(b.response[0].data(), b.length), 1.5 * energy(b.response[1].data(), b.length));
    // Lead: cross-correlation peak of left against right at a negative lag (left earlier).
    int best_lag = 0;
    double best = -1e30;
    for (int lag = -20; lag <= 20; ++lag) {
      double s = 0;
      for (int i = 30; i < b.length - 30; ++i) s += double(b.response[0][size_t(i)]) * b.response[1][size_t(i + lag)];
      if (s > best) best = s, best_lag = lag;
    }
    EXPECT_GT(best_lag, 0) << "right ear must lag the left";
  }
}

TEST(Brir, MeasuredT60MatchesTheRequestedT60) {
  // Tolerance: 10 % of the requested T60 (Schroeder T20 of the reverberant part in the 0.35-1.4 kHz region,
  // where the band ratio is 1). Exception, 20 %: rooms over 200 m^3 at T60 < 0.3 s, where the image-source
  // part (up to 60-75 ms there) fills most of the T20 window and decays by the room's geometry (floor and
  // ceiling images lose energy faster than Eyring's diffuse-field average), measured 0.83x.
  const Vec3 rooms[] = {{3, 3, 2.5}, {6, 5, 3}, {10, 9, 4}};
  for (const Vec3& L : rooms)
    for (double t60 : {0.2, 0.4, 0.6, 0.8, 1.0}) {
      SCOPED_TRACE(std::to_string(L.x) + " m room, T60 " + std::to_string(t60));
      BrirRequest req;
      req.room = room(L.x, L.y, L.z, t60);
      req.t60_s = t60;
      req.listener_m = {L.x * 0.4, L.y * 0.55, 1.5};
      req.source_m = {L.x * 0.7, L.y * 0.3, 1.6};
      Rng rng(7, uint64_t(t60 * 100), Stream::tail);
      Brir b;
      render_brir(req, &kemar(), &kemar_diffuse(), rng, b);
      const double tol = (L.x * L.y * L.z > 200 && t60 < 0.3) ? 0.2 : 0.1;
      for (int ear = 0; ear < 2; ++ear) EXPECT_NEAR(measured_t60(reverberant_part(b, ear), 354, 1414), t60, tol * t60);
    }
}

TEST(Brir, HighBandsDecayFasterAsConfigured) {
  BrirRequest req;
  req.room = room(7, 6, 3, 0.8);
  req.t60_s = 0.8;
  req.band_t60_ratio = {1.0, 1.0, 1.0, 1.0, 0.6, 0.6, 0.6};  // 2 kHz and up decay 0.6x as long
  req.listener_m = {3, 3, 1.5};
  req.source_m = {5, 4, 1.5};
  Rng rng(3, 0, Stream::tail);
  Brir b;
  render_brir(req, &kemar(), &kemar_diffuse(), rng, b);
  const auto late = reverberant_part(b, 0);
  const double t_mid = measured_t60(late, 354, 1414), t_4k = measured_t60(late, 3000, 5300);
  EXPECT_NEAR(t_4k / t_mid, 0.6, 0.08);
}

// Bands that decay alike are split off together: 4 inverse transforms instead of 7 with the default ratios.
// Exact up to float rounding: ratios a hair apart (1 - 1e-12, not grouped) render band by band, and the two
// tails agree sample by sample.
TEST(Brir, BandsOfEqualDecayRenderedTogetherMatchBandByBand) {
  const TailBandGroups g = tail_band_groups({1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7});
  EXPECT_EQ(g.ratio, (std::vector<double>{1.0, 0.95, 0.85, 0.7}));
  EXPECT_EQ(g.group_of_band, (std::vector<int>{0, 0, 0, 0, 1, 2, 3}));
  for (double f : {50.0, 300.0, 1000.0, 2500.0, 7000.0}) {
    double sum = 0;
    for (int k = 0; k < 4; ++k) sum += g.weight(k, f);
    EXPECT_NEAR(sum, 1.0, 1e-12) << "the bands' weights are complementary, and so are the groups'";
    EXPECT_NEAR(g.weight(0, f), band_weight(0, f) + band_weight(1, f) + band_weight(2, f) + band_weight(3, f), 1e-15);
  }
  EXPECT_EQ(tail_band_groups({0.7, 1, 0.7, 1, 1, 1, 1}).group_of_band, (std::vector<int>{0, 1, 0, 1, 1, 1, 1}));
  EXPECT_THROW(tail_band_groups({1, 1}), InputError);

  BrirRequest req;
  req.room = room(6, 5, 3, 0.7);
  req.t60_s = 0.7;
  req.listener_m = {2.5, 2, 1.5};
  req.source_m = {4.5, 3.5, 1.4};
  Brir grouped, separate;
  Rng rng_a(5, 0, Stream::tail), rng_b(5, 0, Stream::tail);
  req.band_t60_ratio = {1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7};
  render_brir(req, &kemar(), &kemar_diffuse(), rng_a, grouped);
  req.band_t60_ratio = {1.0, 1.0 - 1e-12, 1.0 - 2e-12, 1.0 - 3e-12, 0.95, 0.85, 0.7};
  EXPECT_EQ(tail_band_groups(req.band_t60_ratio).ratio.size(), 7u);
  render_brir(req, &kemar(), &kemar_diffuse(), rng_b, separate);
  ASSERT_EQ(grouped.length, separate.length);
  for (int ear = 0; ear < 2; ++ear) {
    double err = 0, ref = 0;
    for (int i = 0; i < grouped.length; ++i) {
      const double d = double(grouped.response[ear][size_t(i)]) - separate.response[ear][size_t(i)];
      err += d * d, ref += double(separate.response[ear][size_t(i)]) * separate.response[ear][size_t(i)];
    }
    EXPECT_LT(10 * std::log10(err / ref), -100.0) << "ear " << ear;
  }
}

TEST(Brir, DiffuseCoherenceIsHighAtLowAndLowAtHighFrequencies) {
  const DiffuseField& df = kemar_diffuse();
  EXPECT_GT(df.coherence_at(100.0), 0.8);
  EXPECT_LT(std::fabs(df.coherence_at(3000.0)), 0.3);
}

TEST(Brir, GeometryOutsideTheRoomIsAnInputError) {
  BrirRequest req;
  req.room = room(4, 4, 3, 0.4);
  req.listener_m = {5, 2, 1.5};
  req.source_m = {1, 1, 1};
  Rng rng(1, 0, Stream::tail);
  Brir b;
  try {
    render_brir(req, nullptr, nullptr, rng, b);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("listener position"), std::string::npos);
  }
}

TEST(Features, GccPhatPeaksAtTheInterauralLag) {
  FeatureConfig fc;
  fc.gcc_max_lag = 16;
  const int n = 16000, d = 5;
  Rng rng(1, 0, Stream::noise);
  std::vector<float> x(static_cast<size_t>(n + d));
  for (auto& v : x) v = float(rng.normal());
  std::vector<float> left(x.begin() + d, x.end()), right(x.begin(), x.begin() + n);  // right lags by d
  std::vector<float> f;
  teacher_features(left.data(), right.data(), n, fc, f);
  const FeatureShape s = teacher_shape(fc, n);
  ASSERT_EQ(f.size(), size_t(s.n_features) * s.n_frames);
  for (int t = 0; t < s.n_frames; t += 17) {
    int best = 0;
    for (int k = 1; k < s.n_features; ++k)
      if (f[size_t(k) * s.n_frames + t] > f[size_t(best) * s.n_frames + t]) best = k;
    EXPECT_EQ(best - fc.gcc_max_lag, -d) << "frame " << t;
  }
}

TEST(Features, IpdAndIldOfKnownPairs) {
  FeatureConfig fc;
  fc.teacher = "ipd_ild";
  const int n = 4000;
  Rng rng(2, 0, Stream::noise);
  std::vector<float> x(static_cast<size_t>(n)), x2(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) x[size_t(i)] = float(rng.normal()), x2[size_t(i)] = 2 * x[size_t(i)];
  std::vector<float> f;
  teacher_features(x2.data(), x.data(), n, fc, f);
  const FeatureShape s = teacher_shape(fc, n);
  const int bins = fc.n_fft / 2 + 1;
  ASSERT_EQ(s.n_features, 3 * bins);
  for (int k = 1; k < bins; k += 31)
    for (int t = 0; t < s.n_frames; t += 5) {
      EXPECT_NEAR(f[size_t(k) * s.n_frames + t], 1.0, 1e-5);                        // cos IPD
      EXPECT_NEAR(f[size_t(bins + k) * s.n_frames + t], 0.0, 1e-5);                 // sin IPD
      EXPECT_NEAR(f[size_t(2 * bins + k) * s.n_frames + t], 20 * std::log10(2.0), 1e-3);  // ILD, left louder
    }
}

// A tone, the right ear a quarter period late, with a stretch of digital silence: the tone's bin carries the
// interaural phase as a unit vector, and frames without energy carry no phase (IPD 0, where the definition
// before 2026-11-26 gave cos 1, sin 0 there, and an arbitrary unit vector wherever only rounding noise was).
TEST(Features, IpdIsThePhatCrossSpectrumAndVanishesWithoutEnergy) {
  FeatureConfig fc;
  fc.teacher = "ipd";
  const int n = 8000, k0 = 32, silent_from = 3000, silent_to = 5000;
  const double w = 2 * M_PI * k0 / fc.n_fft;
  std::vector<float> l(static_cast<size_t>(n)), r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const bool on = i < silent_from || i >= silent_to;
    l[size_t(i)] = on ? float(std::cos(w * i)) : 0.0f, r[size_t(i)] = on ? float(std::sin(w * i)) : 0.0f;
  }
  std::vector<float> f;
  teacher_features(l.data(), r.data(), n, fc, f);
  const FeatureShape s = teacher_shape(fc, n);
  const int bins = fc.n_fft / 2 + 1;
  int silent_frames = 0;
  for (int t = 0; t < s.n_frames; ++t) {
    const int first = t * fc.hop_length, last = first + fc.win_length - 1;
    if (last < silent_from || first >= silent_to) {  // cos(w i) against cos(w i - pi/2): the left leads by pi/2
      EXPECT_NEAR(f[size_t(k0) * s.n_frames + t], 0.0, 1e-3) << "frame " << t;
      EXPECT_NEAR(f[size_t(bins + k0) * s.n_frames + t], 1.0, 1e-3) << "frame " << t;
    } else if (first >= silent_from && last < silent_to) {
      ++silent_frames;
      for (int k = 0; k < bins; ++k) {
        EXPECT_EQ(f[size_t(k) * s.n_frames + t], 0.0f) << "bin " << k << " frame " << t;
        EXPECT_EQ(f[size_t(bins + k) * s.n_frames + t], 0.0f) << "bin " << k << " frame " << t;
      }
    }
  }
  EXPECT_GT(silent_frames, 5);
}

// The PHAT weights as written first (std::abs of the cross-spectrum: glibc's hypotf for complex<float>, hypot
// for complex<double>), bit for bit: teacher_features computes the magnitudes without those calls (2.3x faster
// for GCC-PHAT, 1.6x for IPD/ILD; bench/RESULTS.md, session 20), and its outputs must not move. Noise over six
// decades of level, a silent stretch and an ear 40 dB below the other.
TEST(Features, PhatWeightsAreTheTextbookOnesBitForBit) {
  const int n = 16000;
  Rng rng(99, 0, Stream::noise);
  std::vector<float> l(static_cast<size_t>(n)), r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double level = i > 7000 && i < 9000 ? 0.0 : std::pow(10.0, -3.0 + 6.0 * i / n);
    l[size_t(i)] = float(level * rng.normal()), r[size_t(i)] = float(0.01 * level * rng.normal());
  }
  for (const char* kind : {"gcc_phat", "ipd"}) {
    SCOPED_TRACE(kind);
    FeatureConfig fc;
    fc.teacher = kind;
    std::vector<float> got;
    teacher_features(l.data(), r.data(), n, fc, got);
    int T = 0;
    const auto XL = stft(l.data(), n, fc, T), XR = stft(r.data(), n, fc, T);
    const int bins = fc.n_fft / 2 + 1;
    double mean_pow = 0;
    for (size_t i = 0; i < XL.size(); ++i) mean_pow += std::norm(XL[i]) + std::norm(XR[i]);
    const double eps = 1e-10 * (mean_pow / double(2 * XL.size())) + 1e-30;
    std::vector<float> want(got.size());
    RealFft fft(fc.n_fft);
    ComplexVec G(static_cast<size_t>(bins));
    FloatVec x(static_cast<size_t>(fc.n_fft));
    const int L = fc.gcc_max_lag;
    for (int t = 0; t < T; ++t) {
      for (int k = 0; k < bins; ++k) {
        const auto a = XL[size_t(t) * bins + k], b = XR[size_t(t) * bins + k];
        if (fc.teacher == "gcc_phat") {
          const std::complex<float> g = a * std::conj(b);
          G[size_t(k)] = g / float(std::max(double(std::abs(g)), eps));
        } else {
          const std::complex<double> g = std::complex<double>(a) * std::conj(std::complex<double>(b));
          const std::complex<double> unit = g / std::max(std::abs(g), eps);
          want[size_t(k) * T + t] = float(unit.real()), want[size_t(bins + k) * T + t] = float(unit.imag());
        }
      }
      if (fc.teacher != "gcc_phat") continue;
      fft.inverse(G.data(), x.data());
      for (int lag = -L; lag <= L; ++lag)
        want[size_t(lag + L) * T + t] = x[size_t((lag + fc.n_fft) % fc.n_fft)] / float(fc.n_fft);
    }
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  }
}

TEST(Scene, SamplesAreInsideTheRoomAndLabelsMatchGeometry) {
  const Config c;
  for (uint64_t i = 0; i < 300; ++i) {
    const Scene s = sample_scene(c, 3, i);
    const Vec3& L = s.room.size_m;
    EXPECT_TRUE(L.x >= 3 && L.x <= 10 && L.y >= 3 && L.y <= 10 && L.z >= 2.5 && L.z <= 4);
    EXPECT_NO_THROW(check_inside(s.room, s.source_m, "source"));
    EXPECT_NO_THROW(check_inside(s.room, s.listener_m, "listener"));
    double az, el, d;
    head_direction(s.source_m, s.listener_m, s.head_yaw_deg, az, el, d);
    EXPECT_NEAR(az, s.azimuth_deg, 1e-6);
    EXPECT_NEAR(d, s.distance_m, 1e-9);
    EXPECT_TRUE(s.azimuth_deg >= -90 && s.azimuth_deg <= 90);
    EXPECT_TRUE(s.hrtf_index >= 0 && s.hrtf_index < 3);
    EXPECT_TRUE(s.t60_s >= 0.2 && s.t60_s <= 1.0);
  }
  EXPECT_EQ(sample_scene(c, 1, 42).source_m.x, sample_scene(c, 1, 42).source_m.x);
}

TEST(Scene, ImpossibleGeometryIsAnInputError) {
  Config c;
  c.source.distance_m = {20, 30};
  EXPECT_THROW(sample_scene(c, 1, 0), InputError);
  c = Config{};
  c.listener.height_m = {5, 6};
  EXPECT_THROW(check_geometry(c), InputError);
  c = Config{};
  c.listener.wall_margin_m = 6;
  EXPECT_THROW(check_geometry(c), InputError);
}

TEST(Pipeline, MeasuredSnrMatchesTheSceneForEveryNoiseType) {
  for (const char* type : {"diffuse", "point", "babble"}) {
    SCOPED_TRACE(type);
    Config c = small_config();
    c.noise.type_weights = {{type, 1.0}};
    const Renderer r(c);
    for (uint64_t i = 0; i < 3; ++i) {
      const Example e = r.render(i);
      EXPECT_STREQ(noise_type_name(e.scene.noise_type), type);
      const double snr = 10 * std::log10(energy(e.reverberant.data(), e.reverberant.size()) /
                                         energy(e.noise.data(), e.noise.size()));
      EXPECT_NEAR(snr, e.scene.snr_db, 1e-3);
      for (size_t k = 0; k < e.augmented.size(); k += 97)
        EXPECT_NEAR(e.augmented[k], e.reverberant[k] + e.noise[k], 1e-6);
    }
  }
}

TEST(Pipeline, IsDeterministicAndTeacherComesFromTheCleanPair) {
  const Config c = small_config();
  const Renderer r(c);
  const Example a = r.render(11), b = r.render(11), other = r.render(12);
  EXPECT_EQ(a.augmented, b.augmented);
  EXPECT_EQ(a.teacher, b.teacher);
  EXPECT_NE(a.augmented, other.augmented);
  std::vector<float> t;
  teacher_features(a.clean.data(), a.clean.data() + a.n_samples, a.n_samples, c.features, t);
  EXPECT_EQ(t, a.teacher);
  const FeatureShape s = teacher_shape(c.features, a.n_samples);
  EXPECT_EQ(a.teacher.size(), size_t(s.n_features) * s.n_frames);
  float peak = 0;
  for (float v : a.augmented) peak = std::max(peak, std::fabs(v));
  EXPECT_LE(peak, 0.99f + 1e-6f);
}

// render_noise's draw 0 is render()'s noise (before the mix's gain); another draw redraws the random parts only:
// synthetic noise and reverberant emitters differ, an anechoic recorded-noise emitter (nothing random) does not.
TEST(Pipeline, RenderNoiseDrawZeroIsTheExamplesNoiseAndOtherDrawsRedrawOnlyTheRandomParts) {
  const auto relative_difference = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, e = 0;
    for (size_t i = 0; i < a.size(); ++i) d += double(a[i] - b[i]) * (a[i] - b[i]), e += double(a[i]) * a[i];
    return std::sqrt(d / e);
  };
  Config c = small_config();
  for (const char* type : {"diffuse", "point", "babble"}) {
    SCOPED_TRACE(type);
    c.noise.type_weights = {{type, 1.0}};
    const Renderer r(c);
    const Example e = r.render(5);
    const ExamplePlan p = r.plan(5);
    const std::vector<float> draw0 = r.render_noise(p, 5, 0), draw1 = r.render_noise(p, 5, 1);
    ASSERT_EQ(draw0.size(), e.noise.size());
    const double gain = double(e.noise[0]) / draw0[0];  // mix_at_snr's one gain times the output gain
    for (size_t i = 0; i < draw0.size(); ++i)
      ASSERT_NEAR(e.noise[i], float(gain * draw0[i]), 1e-6 * std::fabs(gain) + 1e-7);
    EXPECT_GT(relative_difference(draw0, draw1), 0.05) << "another draw redraws the noise and the emitters' tails";
  }
  // Nothing random: a recorded noise through an anechoic room's direct path.
  const bsim_tests::TempDir dir("render_noise_recorded");
  {
    Rng rng(3, 0, Stream::noise);
    std::vector<float> x(16000);
    for (float& v : x) v = float(0.1 * rng.normal());
    write_wav((dir / "hum.wav").string(), {x.data()}, int(x.size()), 16000.0);
  }
  c.noise.type_weights = {{"point", 1.0}};
  c.noise.roots = {dir.string()};
  c.room.anechoic_prob = 1.0;
  const Renderer r(c);
  const ExamplePlan p = r.plan(5);
  EXPECT_EQ(r.render_noise(p, 5, 0), r.render_noise(p, 5, 1));
}

TEST(Pipeline, AnechoicReverberantEqualsClean) {
  Config c = small_config();
  c.room.anechoic_prob = 1.0;
  const Renderer r(c);
  const Example e = r.render(0);
  EXPECT_TRUE(e.scene.anechoic);
  for (size_t k = 0; k < e.clean.size(); ++k) ASSERT_NEAR(e.clean[k], e.reverberant[k], 1e-6);
}

TEST(SpectralTilt, GainIsTheSlopeInDbPerOctaveAroundOneKilohertzFlatBelow125Hz) {
  const int n = 16000;  // 1 Hz per bin at 16 kHz
  auto db = [&](float tilt, int hz) { return 20 * std::log10(spectral_tilt_gain(tilt, hz, n, 16000.0f)); };
  EXPECT_EQ(spectral_tilt_gain(0.0f, 4000, n, 16000.0f), 1.0f);  // off: exactly 1, outputs unchanged
  EXPECT_NEAR(db(3.0f, 1000), 0.0, 1e-5);
  EXPECT_NEAR(db(3.0f, 2000), 3.0, 1e-4);
  EXPECT_NEAR(db(3.0f, 8000), 9.0, 1e-4);
  EXPECT_NEAR(db(-4.0f, 250), 8.0, 1e-4);
  EXPECT_NEAR(db(-4.0f, 125), 12.0, 1e-4);
  EXPECT_NEAR(db(-4.0f, 0), 12.0, 1e-4);  // DC keeps the 125 Hz gain
  EXPECT_NEAR(db(-4.0f, 60), 12.0, 1e-4);
}

// convolve_many's input tilt is the zero-phase weight itself: an impulse at p through an impulse filter comes
// out (whole circular result) with |Y_k| = gain(k) and the phase of a pure delay by p.
TEST(SpectralTilt, ConvolutionAppliesTheZeroPhaseWeight) {
  const int n_x = 3000, n_h = 200, p = 700;
  const int n = good_fft_size(n_x + n_h - 1);
  std::vector<float> x(n_x, 0.0f), h(n_h, 0.0f), y(static_cast<size_t>(n));
  x[p] = 1.0f, h[0] = 1.0f;
  convolve_many(x.data(), n_x, {h.data()}, n_h, n, {y.data()}, SpectralTilt{-5.0f, 16000.0f});
  RealFft fft(n);
  FloatVec buf(y.begin(), y.end());
  ComplexVec Y(static_cast<size_t>(fft.bins()));
  fft.forward(buf.data(), Y.data());
  for (int k = 0; k < fft.bins(); k += 7) {
    const std::complex<double> delay = std::polar(1.0, -2 * M_PI * double(k) * p / n);
    const std::complex<double> want = double(spectral_tilt_gain(-5.0f, k, n, 16000.0f)) * delay;
    ASSERT_NEAR(std::abs(std::complex<double>(Y[size_t(k)]) - want), 0.0, 1e-4 * std::abs(want)) << "bin " << k;
  }
}

// speech.tilt_db_per_octave: the voice of each example is tilted by the slope it draws (the spectrum of the
// clean and of the reverberant rendering over the untilted one's is a line of that slope in dB against
// log2 f), while the scene and the noise waveform stay as they were.
TEST(Pipeline, SpeechTiltTiltsTheVoiceOnly) {
  Config c = small_config();
  c.noise.type_weights = {{"diffuse", 1.0}};
  const Renderer plain(c);
  c.speech.tilt_db_per_octave = {-6, 6};
  const Renderer tilted(c);
  const int T = plain.n_samples();
  const int n = good_fft_size(T);
  RealFft fft(n);
  auto spectrum = [&](const float* x) {
    FloatVec buf(static_cast<size_t>(n), 0.0f);
    std::copy(x, x + T, buf.begin());
    ComplexVec X(static_cast<size_t>(fft.bins()));
    fft.forward(buf.data(), X.data());
    return X;
  };
  // Least-squares slope of 20 log10 |B/A| against log2(f / 1 kHz) over 250 Hz .. 6 kHz (the exact shape of the
  // weight is checked on convolve_many alone: cutting the renderings at T makes weak bins stray a little).
  auto slope_db_per_octave = [&](const float* a, const float* b) {
    const ComplexVec A = spectrum(a), B = spectrum(b);
    float peak = 0;
    for (const auto& v : A) peak = std::max(peak, std::abs(v));
    std::vector<double> x, y;
    for (int k = 0; k < fft.bins(); ++k) {
      const double f = k * kFs / n;
      if (f < 250 || f > 6000 || std::abs(A[size_t(k)]) < 1e-2f * peak) continue;
      x.push_back(std::log2(f / 1000)), y.push_back(20 * std::log10(std::abs(B[size_t(k)]) / std::abs(A[size_t(k)])));
    }
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / x.size();
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / y.size();
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
    return sxy / sxx;
  };
  double lowest = 0, highest = 0;
  for (uint64_t i = 0; i < 6; ++i) {
    const Example a = plain.render(i), b = tilted.render(i);
    const double tilt = b.scene.speech_tilt_db_per_octave;
    SCOPED_TRACE("example " + std::to_string(i) + ", tilt " + std::to_string(tilt));
    EXPECT_EQ(a.scene.speech_tilt_db_per_octave, 0.0);
    EXPECT_GE(tilt, -6.0);
    EXPECT_LE(tilt, 6.0);
    lowest = std::min(lowest, tilt), highest = std::max(highest, tilt);
    EXPECT_EQ(a.scene.azimuth_deg, b.scene.azimuth_deg);
    EXPECT_EQ(a.scene.t60_s, b.scene.t60_s);
    EXPECT_EQ(a.scene.snr_db, b.scene.snr_db);
    EXPECT_EQ(a.speech_index, b.speech_index);
    for (int ear = 0; ear < 2; ++ear) {
      EXPECT_NEAR(slope_db_per_octave(a.clean.data() + ear * T, b.clean.data() + ear * T), tilt, 0.05) << "clean " << ear;
      EXPECT_NEAR(slope_db_per_octave(a.reverberant.data() + ear * T, b.reverberant.data() + ear * T), tilt, 0.05)
          << "reverberant " << ear;
    }
    // The noise is the same waveform, only its level follows the (tilted) speech's energy.
    const double ab = std::inner_product(a.noise.begin(), a.noise.end(), b.noise.begin(), 0.0);
    EXPECT_GT(ab / std::sqrt(energy(a.noise.data(), a.noise.size()) * energy(b.noise.data(), b.noise.size())), 0.99999);
  }
  EXPECT_LT(lowest, -1.0);  // both directions were drawn
  EXPECT_GT(highest, 1.0);
}

// threads: 0 is every core, shared by the ranks a launcher started on this machine; a number is that number.
TEST(Threads, AutomaticCountSharesTheCoresAmongTheLocalRanks) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(resolve_threads(0, 1), cores);
  EXPECT_EQ(resolve_threads(0, 2), std::max(1, cores / 2));
  EXPECT_EQ(resolve_threads(0, 4LL * cores), 1);
  EXPECT_EQ(resolve_threads(3, 8), 3);
}
