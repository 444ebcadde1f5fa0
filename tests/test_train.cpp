// train/: the student network is causal for both encoders, encoder.pt round-trips, and the DoA readout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "io/error.h"
#include "tests/temp_dir.h"
#include "train/model.h"

using namespace bsim;

namespace {
SpatialNet small_net(const std::string& encoder) {
  ModelConfig m;
  m.encoder = encoder;
  m.width = 32;
  m.layers = 2;
  m.heads = 4;
  m.conv_kernel = 5;
  return SpatialNet(m, FeatureConfig{}, 33, DoaGrid(m).n_classes);
}
}  // namespace

TEST(SpatialNet, EncodersAreCausal) {
  for (const char* encoder : {"lstm", "conformer"}) {
    SCOPED_TRACE(encoder);
    torch::manual_seed(0);
    SpatialNet net = small_net(encoder);
    net->eval();
    torch::NoGradGuard no_grad;
    auto audio = torch::randn({2, 2, 16000});
    const auto a = net->encode(audio);
    // Change everything after frame 40's window (frames start every 160 samples, 400 long).
    auto later = audio.clone();
    const int64_t cut = 40 * 160 + 400;
    later.narrow(2, cut, 16000 - cut).normal_();
    const auto b = net->encode(later);
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_TRUE(torch::allclose(a.narrow(1, 0, 41), b.narrow(1, 0, 41), 1e-5, 1e-6)) << "past frames moved";
    EXPECT_FALSE(torch::allclose(a.narrow(1, 45, 10), b.narrow(1, 45, 10), 1e-3, 1e-3)) << "future frames did not";
  }
}

TEST(SpatialNet, EncoderStateDictRoundTripsAndRejectsMismatches) {
  const bsim_tests::TempDir dir("train_state_dict");
  for (const char* encoder : {"lstm", "conformer"}) {
    SCOPED_TRACE(encoder);
    torch::manual_seed(1);
    SpatialNet a = small_net(encoder);
    torch::manual_seed(2);
    SpatialNet b = small_net(encoder);
    const std::string path = (dir / (std::string(encoder) + ".pt")).string();
    save_encoder_state_dict(a, path);
    load_encoder_state_dict(b, path);
    auto pa = a->encoder_parameters(), pb = b->encoder_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i].second, pb[i].second)) << pa[i].first;
  }
  SpatialNet lstm = small_net("lstm");
  EXPECT_THROW(load_encoder_state_dict(lstm, (dir / "conformer.pt").string()), InputError);
  EXPECT_THROW(load_encoder_state_dict(lstm, (dir / "missing.pt").string()), InputError);
}

namespace {
DoaGrid grid_of(const std::string& layout, const std::string& estimate, double resolution = 5.0) {
  ModelConfig m;
  m.doa_grid = layout;
  m.doa_estimate = estimate;
  m.doa_resolution_deg = resolution;
  return DoaGrid(m);
}
// Scores that fall off with the squared (circular, on the full grid) distance of each centre from `az`.
std::vector<float> quadratic_scores(const DoaGrid& g, double az, double offset = 3.0) {
  std::vector<float> s(size_t(g.n_classes));
  for (int k = 0; k < g.n_classes; ++k) {
    double d = g.centre_deg(k) - az;
    if (g.full) d = std::remainder(d, 360.0);
    s[size_t(k)] = float(offset - d * d / 50.0);
  }
  return s;
}
}  // namespace

TEST(DoaGrid, ClassReadoutIsTheFirstWinnersCentre) {
  const DoaGrid g = grid_of("frontal", "class");
  std::vector<float> s(36, 0.0f);
  s[7] = s[20] = 2.0f;  // a tie: the first, as torch's argmax
  s[8] = 1.9f;          // a strong neighbour does not move the class readout
  EXPECT_DOUBLE_EQ(g.azimuth_deg(s.data()), g.centre_deg(7));
  EXPECT_DOUBLE_EQ(g.centre_deg(7), -52.5);
}

TEST(DoaGrid, ParabolicReadoutFindsTheVertexOfQuadraticScores) {
  for (const char* layout : {"frontal", "full"})
    for (double res : {5.0, 2.0, 10.0}) {
      const DoaGrid g = grid_of(layout, "parabolic", res);
      const double lo = g.full ? -180.0 : -90.0 + 1.5 * res, hi = g.full ? 180.0 : 90.0 - 1.5 * res;
      for (double az = lo; az < hi; az += 0.37 * res) {
        const std::vector<float> s = quadratic_scores(g, az);
        const double est = g.azimuth_deg(s.data());
        EXPECT_NEAR(est, az, 2e-3 * res) << layout << " " << res << " deg classes, azimuth " << az;
        const int winner = int(std::max_element(s.begin(), s.end()) - s.begin());  // never leaves its class
        EXPECT_LE(std::abs(std::remainder(est - g.centre_deg(winner), 360.0)), 0.5 * res + 1e-9);
      }
    }
}

TEST(DoaGrid, FullGridReadoutWrapsAroundTheBack) {
  const DoaGrid g = grid_of("full", "parabolic");
  for (double az : {179.0, -179.0, 178.0, -177.6}) {
    const std::vector<float> s = quadratic_scores(g, az);
    EXPECT_NEAR(g.azimuth_deg(s.data()), az, 0.01) << az;
  }
  // The last class with its back neighbour (class 0) as strong as itself: the vertex is the boundary, which
  // is reported as -180, inside [-180, 180).
  std::vector<float> s(72, 0.0f);
  s[71] = s[0] = 1.0f;
  s[70] = s[1] = 0.5f;
  EXPECT_DOUBLE_EQ(g.azimuth_deg(s.data()), -180.0);
}

TEST(DoaGrid, LocalMeanMovesTowardsTheStrongerNeighbourWithinTheClass) {
  const DoaGrid g = grid_of("frontal", "local_mean");
  std::vector<float> s(36, -5.0f);
  s[10] = 2.0f;
  s[9] = s[11] = 1.0f;  // symmetric: the centre
  EXPECT_DOUBLE_EQ(g.azimuth_deg(s.data()), g.centre_deg(10));
  s[11] = float(2.0 + std::log(0.5));  // probabilities e^-1 : 1 : 0.5 relative to the winner
  const double p_lo = std::exp(-1.0), expected = g.centre_deg(10) + 5.0 * (0.5 - p_lo) / (p_lo + 1 + 0.5);
  EXPECT_NEAR(g.azimuth_deg(s.data()), expected, 1e-5);
  s[11] = 2.0f - 1e-6f;  // a neighbour nearly as strong: half-way to the boundary at most
  EXPECT_LT(g.azimuth_deg(s.data()), g.centre_deg(10) + 2.5);
  EXPECT_GT(g.azimuth_deg(s.data()), g.centre_deg(10) + 1.0);
}

TEST(DoaGrid, FrontalEndClassesKeepTheirCentres) {
  for (const char* est : {"parabolic", "local_mean"}) {
    const DoaGrid g = grid_of("frontal", est);
    for (double az : {-89.0, 89.0}) {
      const std::vector<float> s = quadratic_scores(g, az);
      EXPECT_DOUBLE_EQ(g.azimuth_deg(s.data()), g.centre_deg(g.class_of(az))) << est << " " << az;
    }
  }
}

TEST(DoaGrid, ClipScoresPoolAllFramesOrTakeTheLast) {
  const torch::Tensor frames = torch::arange(2 * 4 * 36, torch::kFloat32).reshape({2, 4, 36});
  ModelConfig m;
  m.doa_pooling = "mean";
  EXPECT_TRUE(torch::allclose(DoaGrid(m).clip_scores(frames), frames.mean(1)));
  m.doa_pooling = "last";
  const torch::Tensor last = DoaGrid(m).clip_scores(frames);
  EXPECT_EQ(last.sizes(), (std::vector<int64_t>{2, 36}));
  EXPECT_TRUE(torch::equal(last, frames.index({torch::indexing::Slice(), 3})));
}
