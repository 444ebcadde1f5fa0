// Checks of a batched BRIR renderer (the GPU's cuda::BrirRenderer, or the same kernels run on the CPU by
// tests/test_kernel_emulation.cpp) against sim/brir.cpp's render_brir. A Renderer type has BrirRenderer's
// single-grid constructor and render().
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "io/hrtf.h"
#include "kernels/brir_gpu.h"
#include "sim/brir.h"
#include "sim/room.h"
#include "sim/rng.h"
#include "tests/conv_check.h"

namespace bsim::test {

struct BrirCase {
  Vec3 size, source, listener;
  double t60, yaw_deg, transition_s;
};

// Four edge cases (smallest and largest rooms, a source 5 cm from a wall with the listener at the centre) and
// `n_random` random rooms of 3-10 m with T60 0.2-1.0 s.
inline std::vector<BrirCase> brir_cases(int n_random) {
  std::vector<BrirCase> cases = {
      {{3, 3, 2.5}, {2.2, 0.8, 1.6}, {1.2, 1.6, 1.5}, 0.2, 0, 0.02},
      {{10, 9, 4}, {8, 7, 1.7}, {3, 2, 1.5}, 1.0, 37, 0.1},
      {{6, 4, 3}, {4, 3, 1.6}, {2, 2, 1.5}, 0.5, -120, 0.05},
      {{7, 5, 3}, {6.95, 2.5, 1.5}, {3.5, 2.5, 1.5}, 0.6, 90, 0.06},  // source 5 cm from a wall, listener at the centre
  };
  Rng rng(5, 0, Stream::scene);
  for (int i = 0; i < n_random; ++i) {
    const Vec3 L{rng.uniform(3, 10), rng.uniform(3, 10), rng.uniform(2.5, 4)};
    cases.push_back({L, {rng.uniform(0.3, L.x - 0.3), rng.uniform(0.3, L.y - 0.3), rng.uniform(0.3, L.z - 0.3)},
                     {rng.uniform(0.5, L.x - 0.5), rng.uniform(0.5, L.y - 0.5), 1.5}, rng.uniform(0.2, 1.0),
                     rng.uniform(-180, 180), rng.uniform(0.02, 0.1)});
  }
  return cases;
}

inline cuda::RoomGeometry room_geometry(const Vec3& size, double beta, const Vec3& source, const Vec3& listener,
                                        double yaw_deg) {
  cuda::RoomGeometry g{};
  g.size_m[0] = float(size.x), g.size_m[1] = float(size.y), g.size_m[2] = float(size.z);
  for (int w = 0; w < 6; ++w) g.beta[w] = float(beta);
  g.source_m[0] = float(source.x), g.source_m[1] = float(source.y), g.source_m[2] = float(source.z);
  g.listener_m[0] = float(listener.x), g.listener_m[1] = float(listener.y), g.listener_m[2] = float(listener.z);
  g.yaw_rad = float(yaw_deg * M_PI / 180.0);
  return g;
}

// Renders the cases on the CPU (images up to the transition distance, no tail) and with the Renderer, and checks
// every room's image count and two ears by NMSE (below max_nmse_db: float sums in another order).
template <class Renderer>
void expect_early_brirs_match_cpu(const HrirGrid& grid, const std::vector<BrirCase>& cases, double max_nmse_db) {
  const double c = 343.0;
  int length = 0;
  std::vector<Brir> cpu(cases.size());
  std::vector<cuda::RoomGeometry> rooms;
  for (size_t i = 0; i < cases.size(); ++i) {
    const BrirCase& k = cases[i];
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
    cuda::RoomGeometry g = room_geometry(k.size, beta, k.source, k.listener, k.yaw_deg);
    g.max_distance_m = float(req.image_limit.max_distance_m);
    rooms.push_back(g);
  }
  Renderer renderer(grid, int(rooms.size()), length, 16384, 16, c);
  std::vector<float> out(size_t(rooms.size()) * 2 * length, std::nanf(""));  // poisoned
  std::vector<int> counts;
  renderer.render(rooms, out, counts);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("room " + std::to_string(i));
    EXPECT_EQ(counts[i], cpu[i].n_images);
    for (int ear = 0; ear < 2; ++ear) {
      std::vector<float> ref(size_t(length), 0.0f);
      std::copy(cpu[i].response[ear].begin(), cpu[i].response[ear].end(), ref.begin());
      const float* g = out.data() + (i * 2 + size_t(ear)) * length;
      for (int t = 0; t < length; ++t) ASSERT_TRUE(std::isfinite(g[t])) << t;
      EXPECT_LT(nmse_db(g, ref.data(), size_t(length)), max_nmse_db) << "ear " << ear;
      // The same support: a sample the CPU writes and the GPU leaves at zero (an image's last value dropped, far
      // below the energy's tolerance) or the reverse.
      int support = 0;
      for (int t = 0; t < length; ++t) support += (g[t] == 0.0f) != (ref[size_t(t)] == 0.0f);
      EXPECT_EQ(support, 0) << "ear " << ear << ": samples zero on one side only";
    }
  }
}

// Broadband Schroeder T20 of x (the tail check takes it of the response and of its first difference).
inline double t20(const float* x, int n, double fs) {
  std::vector<double> edc(static_cast<size_t>(n));
  double acc = 0;
  for (int i = n; i-- > 0;) acc += double(x[i]) * x[i], edc[size_t(i)] = acc;
  double st = 0, sd = 0, stt = 0, std_ = 0;
  int m = 0;
  for (int i = 0; i < n; ++i) {
    const double db = 10 * std::log10(edc[size_t(i)] / edc[0] + 1e-30);
    if (db <= -5 && db >= -25) st += i / fs, sd += db, stt += (i / fs) * (i / fs), std_ += (i / fs) * db, ++m;
  }
  const double slope = (m * std_ - st * sd) / (m * stt - st * st);
  return -60.0 / slope;
}

// Whole responses with the late tail against the CPU's, by their statistics (the two draw different random
// numbers): T60 within 10 % of the CPU's (and of the request where every band decays alike), the high bands'
// decay (from the first difference, a high-pass: gain 2 sin(pi f / fs)) within 15 %, and the late energy (from
// 10 ms after the transition) within 1.5 dB. One decay for every band (one group of bands), then the high bands
// shorter (two groups: 2 kHz and up at 0.6 x T60).
template <class Renderer>
void expect_tails_match_cpu(const HrirGrid& grid, const DiffuseField& df) {
  const double c = 343.0, fs = grid.fs_hz;
  struct Room {
    Vec3 L;
    double t60;
  };
  const std::vector<Room> rooms_in = {{{4, 3, 2.5}, 0.3}, {{7, 6, 3}, 0.6}, {{10, 9, 4}, 0.9}};
  const int length = int(1.0 * fs) + grid.n_taps + 64;
  for (const std::vector<double>& ratios :
       {std::vector<double>(kTailBands, 1.0), std::vector<double>{1, 1, 1, 1, 0.6, 0.6, 0.6}}) {
    SCOPED_TRACE("band T60 ratios from " + std::to_string(ratios.front()) + " to " + std::to_string(ratios.back()));
    Renderer renderer(grid, int(rooms_in.size()), length, 16384, 16, c, &df, ratios);
    std::vector<cuda::RoomGeometry> rooms;
    std::vector<Brir> cpu(rooms_in.size());
    for (size_t i = 0; i < rooms_in.size(); ++i) {
      const Vec3& L = rooms_in[i].L;
      BrirRequest req;
      req.room.size_m = L;
      const double beta = reflection_coefficient(L, rooms_in[i].t60, AbsorptionModel::eyring, c);
      for (double& b : req.room.beta) b = beta;
      req.source_m = {L.x * 0.7, L.y * 0.3, 1.6}, req.listener_m = {L.x * 0.4, L.y * 0.55, 1.5};
      req.t60_s = rooms_in[i].t60;
      req.band_t60_ratio = ratios;
      req.length = length;
      Rng rng(9, i, Stream::tail);
      render_brir(req, &grid, &df, rng, cpu[i]);
      cuda::RoomGeometry g = room_geometry(L, beta, req.source_m, req.listener_m, 0.0);
      g.transition_s = float(cpu[i].transition_s);
      g.max_distance_m = float(cpu[i].transition_s * c);
      g.t60_s = float(rooms_in[i].t60);
      g.tail_seed = 1000 + i;
      rooms.push_back(g);
    }
    std::vector<float> out;
    std::vector<int> counts;
    renderer.render(rooms, out, counts, /*late_tail=*/true);
    for (size_t i = 0; i < rooms.size(); ++i)
      for (int ear = 0; ear < 2; ++ear) {
        SCOPED_TRACE("room " + std::to_string(i) + " ear " + std::to_string(ear));
        const float* g = out.data() + (i * 2 + size_t(ear)) * length;
        const float* r = cpu[i].response[ear].data();
        EXPECT_NEAR(t20(g, length, fs), t20(r, length, fs), 0.1 * rooms_in[i].t60);
        if (ratios.back() == 1.0) EXPECT_NEAR(t20(g, length, fs), rooms_in[i].t60, 0.1 * rooms_in[i].t60);
        std::vector<float> dg(size_t(length), 0.0f), dr(size_t(length), 0.0f);
        for (int t = 1; t < length; ++t) dg[size_t(t)] = g[t] - g[t - 1], dr[size_t(t)] = r[t] - r[t - 1];
        const double high_t60 = rooms_in[i].t60 * ratios.back();
        EXPECT_NEAR(t20(dg.data(), length, fs), t20(dr.data(), length, fs), 0.15 * high_t60) << "high bands";
        EXPECT_NEAR(t20(dg.data(), length, fs), high_t60, 0.15 * high_t60) << "high bands";
        const int from = int((cpu[i].transition_s + 0.01) * fs);
        double eg = 0, er = 0;
        for (int t = from; t < length; ++t) eg += double(g[t]) * g[t], er += double(r[t]) * r[t];
        EXPECT_NEAR(10 * std::log10(eg / er), 0.0, 1.5);
      }
  }
}

}  // namespace bsim::test
