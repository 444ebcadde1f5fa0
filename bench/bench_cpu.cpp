// CPU pipeline throughput (Google Benchmark). Counters: rooms/s, seconds of audio per second.
// Single-threaded per benchmark; `bsim generate` spreads examples over all cores.
#include <benchmark/benchmark.h>

#include "sim/brir.h"
#include "sim/features.h"
#include "sim/fft.h"
#include "sim/pipeline.h"
#include "sim/scene.h"

using namespace bsim;

namespace {
const HrirGrid& kemar() {
  static const HrirGrid g = load_hrir_grid(HrtfConfig{}.sofa.front(), 16000.0, 2.0, 5.0);
  return g;
}
const DiffuseField& kemar_df() {
  static const DiffuseField d = compute_diffuse_field(kemar());
  return d;
}
const Renderer& renderer() {
  static const Renderer r{Config{}};
  return r;
}
}  // namespace

// A new room per iteration from the default config: per-image HRIRs up to the transition time and a
// late tail to -60 dB (16 kHz, rooms 3-10 m, T60 0.2-1.0 s).
static void BM_BrirNewRoom(benchmark::State& state) {
  const Renderer& r = renderer();
  uint64_t i = 0;
  long images = 0;
  for (auto _ : state) {
    const Scene s = sample_scene(r.config(), 1, i);
    Rng rng(1, i++, Stream::tail);
    Brir b;
    render_brir(r.brir_request(s, s.source_m), &kemar(), &kemar_df(), rng, b);
    images += b.n_images;
    benchmark::DoNotOptimize(b.response[0].data());
  }
  state.counters["rooms/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["images/room"] = double(images) / double(state.iterations());
}
BENCHMARK(BM_BrirNewRoom)->Unit(benchmark::kMillisecond);

// Images up to a reflection order, no tail: the same work pyroomacoustics does with per-image HRTFs
// (bench/compare_pyroomacoustics.py runs both on the same room).
static void BM_BrirImagesOnly(benchmark::State& state) {
  BrirRequest req;
  req.room.size_m = {6, 4, 3};
  const double beta = reflection_coefficient(req.room.size_m, 0.5, AbsorptionModel::eyring);
  for (double& b : req.room.beta) b = beta;
  req.listener_m = {2, 2, 1.5};
  req.source_m = {4, 3, 1.6};
  req.late_tail = false;
  req.image_limit.max_order = int(state.range(0));
  Rng rng(1, 0, Stream::tail);
  Brir b;
  for (auto _ : state) {
    render_brir(req, &kemar(), &kemar_df(), rng, b);
    benchmark::DoNotOptimize(b.response[0].data());
  }
  state.counters["rooms/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["images"] = b.n_images;
}
BENCHMARK(BM_BrirImagesOnly)->Arg(6)->Arg(10)->Arg(15)->Unit(benchmark::kMillisecond);

// 4 s of speech through a 0.5 s BRIR, both ears, plus the direct path (4 filters, one speech FFT); Arg 1 with the
// speech spectrum tilted (speech.tilt_db_per_octave: one exp2/log2 per bin on top of five 72,000-point FFTs).
static void BM_Convolve4s(benchmark::State& state) {
  const SpectralTilt tilt{state.range(0) ? 3.0f : 0.0f, 16000.0f};
  const int T = 64000, L = 8000;
  std::vector<float> x(T), h(L), y(T);
  Rng rng(1, 0, Stream::noise);
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : h) v = float(rng.normal());
  for (auto _ : state) {
    convolve_many(x.data(), T, {h.data(), h.data(), h.data(), h.data()}, L, T, {y.data(), y.data(), y.data(), y.data()},
                  tilt);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(state.range(0) ? "tilted" : "plain");
  state.counters["audio_s/s"] = benchmark::Counter(4.0 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Convolve4s)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// Teacher features of a 4 s binaural pair (STFT 512/400/160).
static void BM_Teacher4s(benchmark::State& state) {
  FeatureConfig fc;
  fc.teacher = state.range(0) == 0 ? "gcc_phat" : "ipd_ild";
  const int T = 64000;
  std::vector<float> l(T), r(T), out;
  Rng rng(1, 0, Stream::noise);
  for (int i = 0; i < T; ++i) l[i] = float(rng.normal()), r[i] = float(rng.normal());
  for (auto _ : state) {
    teacher_features(l.data(), r.data(), T, fc, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(fc.teacher);
  state.counters["audio_s/s"] = benchmark::Counter(4.0 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Teacher4s)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// One whole example from the default config (4 s): scene, BRIRs, speech decode, noise, features.
static void BM_ExampleDefault(benchmark::State& state) {
  const Renderer& r = renderer();
  uint64_t i = 0;
  for (auto _ : state) {
    Example e = r.render(i++);
    benchmark::DoNotOptimize(e.augmented.data());
  }
  state.counters["rooms/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["audio_s/s"] =
      benchmark::Counter(r.config().clip_s * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ExampleDefault)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();

// The host's share of a GPU batch (kernels/pipeline_gpu.cu step 1): planning examples as the CPU renderer
// does (scene, speech segments, noise emitters), one thread, after every utterance has been read once.
static void BM_PlanExample(benchmark::State& state) {
  const Config cfg;
  const Renderer renderer(cfg);
  uint64_t index = 0;
  for (; index < 20000; ++index) benchmark::DoNotOptimize(renderer.plan(index));  // decode the corpus once
  for (auto _ : state) benchmark::DoNotOptimize(renderer.plan(index++));
  state.counters["us/example"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_PlanExample)->Unit(benchmark::kMicrosecond);
