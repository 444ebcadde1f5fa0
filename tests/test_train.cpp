// train/: the student network is causal for both encoders, and encoder.pt round-trips.
#include <gtest/gtest.h>

#include <filesystem>

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
