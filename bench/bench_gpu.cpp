// GPU throughput (Google Benchmark): early BRIRs of many new rooms per launch. Skips without a device.
#include <benchmark/benchmark.h>

#include <cmath>

#include "kernels/early_brir.h"
#include "sim/brir.h"
#include "sim/scene.h"

using namespace bsim;

// B new rooms from the default config per iteration (geometry upload, both kernels and the copy back of
// the responses included): per-image HRIRs up to each room's transition time, 16 kHz, rooms 3-10 m.
static void BM_EarlyBrirBatch(benchmark::State& state) {
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const Config cfg;
  const HrirGrid grid = load_hrir_grid(cfg.hrtf.sofa.front(), cfg.sample_rate_hz, 2.0, 5.0);
  const int B = int(state.range(0));
  const int length = int(0.1 * cfg.sample_rate_hz) + grid.n_taps + 64;
  cuda::EarlyBrirRenderer gpu(grid, B, length, 16384, cfg.render.frac_delay_half_width, cfg.speed_of_sound_m_s);
  std::vector<std::vector<cuda::RoomGeometry>> batches(8);
  for (size_t k = 0; k < batches.size(); ++k)
    for (int i = 0; i < B; ++i) {
      const Scene s = sample_scene(cfg, 1, uint64_t(k * B + i));
      cuda::RoomGeometry g{};
      const Vec3& L = s.room.size_m;
      g.size_m[0] = float(L.x), g.size_m[1] = float(L.y), g.size_m[2] = float(L.z);
      for (int w = 0; w < 6; ++w) g.beta[w] = float(s.room.beta[w]);
      g.source_m[0] = float(s.source_m.x), g.source_m[1] = float(s.source_m.y), g.source_m[2] = float(s.source_m.z);
      g.listener_m[0] = float(s.listener_m.x), g.listener_m[1] = float(s.listener_m.y), g.listener_m[2] = float(s.listener_m.z);
      g.yaw_rad = float(s.head_yaw_deg * M_PI / 180.0);
      g.max_distance_m = float(auto_transition_s(L.x * L.y * L.z, cfg.sample_rate_hz, cfg.speed_of_sound_m_s) *
                               cfg.speed_of_sound_m_s);
      batches[k].push_back(g);
    }
  std::vector<float> out;
  std::vector<int> counts;
  size_t k = 0;
  long images = 0;
  for (auto _ : state) {
    gpu.render(batches[k++ % batches.size()], out, counts);
    for (int c : counts) images += c;
  }
  state.counters["rooms/s"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate);
  state.counters["images/room"] = double(images) / (double(state.iterations()) * B);
  state.counters["GB/s_out"] = benchmark::Counter(double(state.iterations()) * B * 2 * length * 4 / 1e9,
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EarlyBrirBatch)->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
