// GPU kernels against the CPU reference (label gpu). Every test skips where no CUDA device is visible.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/early_brir.h"
#include "sim/brir.h"
#include "sim/room.h"
#include "sim/rng.h"

using namespace bsim;

namespace {

double nmse_db(const float* a, const float* ref, size_t n) {
  double e = 0, r = 0;
  for (size_t i = 0; i < n; ++i) e += double(a[i] - ref[i]) * (a[i] - ref[i]), r += double(ref[i]) * ref[i];
  return 10 * std::log10(e / std::max(r, 1e-300));
}

struct Case {
  Vec3 size, source, listener;
  double t60, yaw_deg, transition_s;
};

// Renders the cases on the CPU (images up to the transition distance, no tail) and on the GPU, and checks
// every room's two ears by NMSE (tolerance -60 dB: float atomics in a different summation order).
void compare(const HrirGrid& grid, const std::vector<Case>& cases) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const double c = 343.0;
  int length = 0;
  std::vector<Brir> cpu(cases.size());
  std::vector<cuda::RoomGeometry> rooms;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    BrirRequest req;
    req.room.size_m = k.size;
    const double beta = reflection_coefficient(k.size, k.t60, AbsorptionModel::eyring, c);
    for (double& b : req.room.beta) b = beta;
    req.source_m = k.source, req.listener_m = k.listener, req.yaw_deg = k.yaw_deg;
    req.late_tail = false;
    req.image_limit.max_distance_m = k.transition_s * c;
    req.fs_hz = grid.fs_hz;
    Rng rng(1, i, Stream::tail);
    render_brir(req, &grid, nullptr, rng, cpu[i]);
    length = std::max(length, cpu[i].length);
    cuda::RoomGeometry g{};
    g.size_m[0] = float(k.size.x), g.size_m[1] = float(k.size.y), g.size_m[2] = float(k.size.z);
    for (int w = 0; w < 6; ++w) g.beta[w] = float(beta);
    g.source_m[0] = float(k.source.x), g.source_m[1] = float(k.source.y), g.source_m[2] = float(k.source.z);
    g.listener_m[0] = float(k.listener.x), g.listener_m[1] = float(k.listener.y), g.listener_m[2] = float(k.listener.z);
    g.yaw_rad = float(k.yaw_deg * M_PI / 180.0);
    g.max_distance_m = float(req.image_limit.max_distance_m);
    rooms.push_back(g);
  }
  cuda::EarlyBrirRenderer gpu(grid, int(rooms.size()), length, 16384, 16, c);
  std::vector<float> out(size_t(rooms.size()) * 2 * length, std::nanf(""));  // poisoned
  std::vector<int> counts;
  gpu.render(rooms, out, counts);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("room " + std::to_string(i));
    EXPECT_EQ(counts[i], cpu[i].n_images);
    for (int ear = 0; ear < 2; ++ear) {
      std::vector<float> ref(size_t(length), 0.0f);
      std::copy(cpu[i].response[ear].begin(), cpu[i].response[ear].end(), ref.begin());
      const float* g = out.data() + (i * 2 + size_t(ear)) * length;
      for (int t = 0; t < length; ++t) ASSERT_TRUE(std::isfinite(g[t])) << t;
      EXPECT_LT(nmse_db(g, ref.data(), size_t(length)), -60.0) << "ear " << ear;
    }
  }
}

}  // namespace

TEST(GpuEarlyBrir, MatchesCpuForRoomsOfVerySizesAndT60s) {
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 16000.0, 2.0, 5.0);
  std::vector<Case> cases = {
      {{3, 3, 2.5}, {2.2, 0.8, 1.6}, {1.2, 1.6, 1.5}, 0.2, 0, 0.02},
      {{10, 9, 4}, {8, 7, 1.7}, {3, 2, 1.5}, 1.0, 37, 0.1},
      {{6, 4, 3}, {4, 3, 1.6}, {2, 2, 1.5}, 0.5, -120, 0.05},
      {{7, 5, 3}, {6.95, 2.5, 1.5}, {3.5, 2.5, 1.5}, 0.6, 90, 0.06},  // source 5 cm from a wall, listener at the centre
  };
  Rng rng(5, 0, Stream::scene);  // plus random rooms
  for (int i = 0; i < 60; ++i) {
    const Vec3 L{rng.uniform(3, 10), rng.uniform(3, 10), rng.uniform(2.5, 4)};
    cases.push_back({L, {rng.uniform(0.3, L.x - 0.3), rng.uniform(0.3, L.y - 0.3), rng.uniform(0.3, L.z - 0.3)},
                     {rng.uniform(0.5, L.x - 0.5), rng.uniform(0.5, L.y - 0.5), 1.5}, rng.uniform(0.2, 1.0),
                     rng.uniform(-180, 180), rng.uniform(0.02, 0.1)});
  }
  compare(grid, cases);
}

TEST(GpuEarlyBrir, LongResponsesAt48kHz) {
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 48000.0, 2.0, 5.0);
  compare(grid, {{{9, 8, 3.5}, {7, 6, 1.2}, {2, 3, 1.6}, 2.0, 10, 0.1}, {{4, 3, 2.6}, {3, 2.5, 2}, {1, 1, 1}, 1.5, 0, 0.1}});
}
