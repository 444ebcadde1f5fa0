// GPU throughput (Google Benchmark): early BRIRs of many new rooms per launch. Skips without a device.
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>

#include "kernels/batch_dsp.h"
#include "kernels/brir_gpu.h"
#include "kernels/device.h"
#include "kernels/pipeline_gpu.h"
#include "kernels/pipeline_plan.h"
#include "kernels/doa_gpu.h"
#include "sim/pipeline.h"
#include "sim/rng.h"
#include "sim/brir.h"
#include "sim/scene.h"

using namespace bsim;

// B new rooms from the default config per iteration (geometry upload and the kernels; with arg 2 = 1 also the
// copy of the responses to pageable host memory): per-image HRIRs up to each room's transition time and (arg 1 = 1) the late tail to
// -60 dB, 16 kHz, rooms 3-10 m, T60 0.2-1.0 s: the 50,000 rooms/s target.
static void BM_BrirBatch(benchmark::State& state) {
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const Config cfg;
  const HrirGrid grid = load_hrir_grid(cfg.hrtf.sofa.front(), cfg.sample_rate_hz, 2.0, 5.0);
  const int B = int(state.range(0));
  const bool tail = state.range(1) != 0;
  const DiffuseField df = compute_diffuse_field(grid);
  const int length = int((tail ? cfg.room.t60_s.hi : 0.1) * cfg.sample_rate_hz) + grid.n_taps + 64;
  cuda::BrirRenderer gpu(grid, B, length, 16384, cfg.render.frac_delay_half_width, cfg.speed_of_sound_m_s, &df,
                         cfg.render.band_t60_ratio);
  std::vector<std::vector<cuda::RoomGeometry>> batches(8);
  for (size_t k = 0; k < batches.size(); ++k)
    for (int i = 0; i < B; ++i) {
      const Scene s = sample_scene(cfg, 1, uint64_t(k * B + i));
      cuda::RoomGeometry g = cuda::room_geometry(cfg, s, s.source_m, 0, grid.n_taps);
      g.n_samples = 0;  // every room to the benchmark's length, as before the pipeline stopped tails per room
      batches[k].push_back(g);
    }
  std::vector<float> out;
  std::vector<int> counts;
  size_t k = 0;
  long images = 0;
  const bool to_host = state.range(2) != 0;
  for (auto _ : state) {
    if (to_host) {
      gpu.render(batches[k++ % batches.size()], out, counts, tail);
      for (int c : counts) images += c;
    } else {
      benchmark::DoNotOptimize(gpu.render_device(batches[k++ % batches.size()], tail));
    }
  }
  if (!to_host) {  // image counts once, outside the timed loop
    gpu.render(batches[0], out, counts, tail);
    for (int c : counts) images += c;
    images = long(double(images) * double(state.iterations()));
  }
  state.counters["rooms/s"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate);
  state.counters["images/room"] = double(images) / (double(state.iterations()) * B);
  state.counters["GB/s_out"] = benchmark::Counter(double(state.iterations()) * B * 2 * length * 4 / 1e9,
                                                  benchmark::Counter::kIsRate);
}
// Args: rooms per launch, late tail, copy to host (0 = responses stay on the device, as in the pipeline).
BENCHMARK(BM_BrirBatch)
    ->Args({256, 0, 0})->Args({256, 1, 0})->Args({2048, 1, 0})->Args({8192, 1, 0})->Args({2048, 1, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// The least global-memory traffic (bytes) of each stage of a pipeline batch: reading the stage's inputs once and
// writing its outputs once, in float32, in the pipeline's layout (kernels/pipeline_gpu.cu): dry signals into E
// zero-padded rows of N; responses into 2E + 2B zero-padded rows of N (L of them response); the convolution
// reads E inputs of T and 2E + 2B responses of L and writes 2E + 2B results of T; mixing reads every result and
// the synthetic noise (2B rows of T) and writes four float32 and two float16 signals of 2B x T; the teacher reads
// the clean signal and writes its features. What a stage moves beyond this (cuFFT's passes, the zero padding
// read back, recomputation) is the distance to its floor.
struct PipelineFloorBytes {
  double dry, brir, conv, mix, teacher;
  double total() const { return dry + brir + conv + mix + teacher; }
};
static PipelineFloorBytes pipeline_floor_bytes(const cuda::DevicePipeline::BatchShape& s) {
  const double E = s.emitters, B = s.examples, N = double(s.row_length), L = s.response_length, T = s.samples;
  const double rows = 2 * E + 2 * B;  // response / result rows
  return {4 * (E * N + E * T), 4 * rows * N, 4 * (E * T + rows * (L + T)),
          4 * (rows * T + 2 * B * T) + 2 * B * T * (4 * 4 + 2 * 2), 4 * (2 * B * T + B * s.features * s.frames)};
}

// 256 examples of 4 s speech, each through its own two-ear 0.5 s response (16 kHz), data already on the
// device: the work torch's FFT convolution is compared against in bench/torch_baselines.py. The default
// (full-length cuFFT) and the partitioned overlap-save kernel in shared memory beside it.
static void convolve_batch(benchmark::State& state, const char* impl) {  // impl null: the default
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int B = 256, F = 2, T = 64000, L = 8000;
  std::vector<float> x(size_t(B) * T), h(size_t(B) * F * L), out;
  Rng rng(1, 0, Stream::noise);
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : h) v = float(rng.normal());
  if (impl) setenv("BSIM_CONV_KERNEL", impl, 1);
  // The default: the constructor's own block and radix, so that BM_ConvolveBatch measures what users get.
  const auto conv = impl ? std::make_unique<cuda::BatchConvolver>(B, F, T, L, int(state.range(0)), int(state.range(1)))
                         : std::make_unique<cuda::BatchConvolver>(B, F, T, L);
  unsetenv("BSIM_CONV_KERNEL");
  conv->run(B, x, h, out);
  for (auto _ : state) conv->recompute();
  state.counters["us/example"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate |
                                                                                        benchmark::Counter::kInvert);
  state.counters["fft_size"] = conv->fft_size();
  state.counters["audio_s/s"] = benchmark::Counter(double(state.iterations()) * B * 4.0, benchmark::Counter::kIsRate);
  // Floor traffic (input and responses read once, outputs written once) per second: against the card's peak.
  const double floor_bytes = 4.0 * (double(T) + double(F) * L + double(F) * T) * B;
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * floor_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["peak_GB/s"] = cuda::peak_memory_gb_s();
}
static void BM_ConvolveBatch(benchmark::State& state) { convolve_batch(state, nullptr); }  // the default
static void BM_ConvolveBatchFused(benchmark::State& state) { convolve_batch(state, "fused"); }
// (block, radix of the shared-memory FFT passes)
BENCHMARK(BM_ConvolveBatchFused)
    ->ArgsProduct({{1024, 2048, 4096}, {8, 16}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ConvolveBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

// Teacher features of 256 binaural 4 s examples (the default implementation per kind; both beside it) on the device (STFT 512/400/160); gcc_phat with 17 lags as
// in the torch reference, and IPD+ILD.
static void teacher_batch(benchmark::State& state, const char* impl) {
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int B = 256, T = 64000;
  FeatureConfig fc;
  fc.teacher = state.range(0) == 0 ? "gcc_phat" : "ipd_ild";
  cuda::FusedTeacherLaunch launch;
  if (impl && std::string(impl) == "fused") launch.frames_per_block = int(state.range(1)), launch.threads = int(state.range(2));
  fc.gcc_max_lag = 8;
  std::vector<float> audio(size_t(B) * 2 * T), out;
  Rng rng(2, 0, Stream::noise);
  for (auto& v : audio) v = float(rng.normal());
  if (impl) setenv("BSIM_TEACHER_KERNEL", impl, 1);
  cuda::BatchTeacher teacher(fc, B, T, launch);
  unsetenv("BSIM_TEACHER_KERNEL");
  teacher.run(B, audio, out);
  for (auto _ : state) teacher.recompute();
  state.SetLabel(fc.teacher);
  state.counters["us/example"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate |
                                                                                        benchmark::Counter::kInvert);
  state.counters["audio_s/s"] = benchmark::Counter(double(state.iterations()) * B * 4.0, benchmark::Counter::kIsRate);
  // Floor traffic (two ears read once, features written once) per second.
  const double floor_bytes = 4.0 * (2.0 * T + double(teacher.n_features()) * teacher.n_frames()) * B;
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * floor_bytes / 1e9, benchmark::Counter::kIsRate);
}
static void BM_TeacherBatch(benchmark::State& state) { teacher_batch(state, nullptr); }  // the default per kind
static void BM_TeacherBatchFused(benchmark::State& state) { teacher_batch(state, "fused"); }
static void BM_TeacherBatchCufft(benchmark::State& state) { teacher_batch(state, "cufft"); }
// The one-pass kernel's launch shapes: (kind, frames per block, threads).
BENCHMARK(BM_TeacherBatchFused)
    ->ArgsProduct({{0, 1}, {4, 8, 16}, {256, 512}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_TeacherBatchCufft)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TeacherBatch)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The whole batch (issue target: 256 examples of 4 s in under 10 ms): host planning of new scenes, uploads,
// dry signals, every emitter's BRIR with its tail, convolution, noise at SNR, output gain, float16, teacher.
// Reported: wall time per batch (planning included; two slots, so planning overlaps the previous batch's
// GPU work), the GPU time per batch from CUDA events, and that time by stage.
static void BM_PipelineBatch(benchmark::State& state) {
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const Config cfg;
  const Renderer renderer(cfg);
  const int B = int(state.range(0));
  cuda::DevicePipeline pipe(renderer, B, 2, true);
  uint64_t next = 0;
  auto batch = [&] {
    std::vector<uint64_t> idx(static_cast<size_t>(B));
    for (auto& i : idx) i = next++;
    return idx;
  };
  for (int w = 0; w < 8; ++w) pipe.enqueue(batch(), w % 2), pipe.wait(w % 2);  // decode + upload the corpus once
  const double busy0 = pipe.busy_seconds();
  const cuda::DevicePipeline::StageSeconds stages0 = pipe.stage_seconds();
  long long k = 0;
  double emitters = 0;  // summed over the measured batches, for the floors
  pipe.enqueue(batch(), 0);
  for (auto _ : state) {
    pipe.enqueue(batch(), int((k + 1) % 2));
    pipe.wait(int(k % 2));
    emitters += pipe.shape(int(k % 2)).emitters;
    ++k;
  }
  pipe.wait(int(k % 2));
  emitters += pipe.shape(int(k % 2)).emitters;
  const double busy = pipe.busy_seconds() - busy0;
  state.counters["examples/s"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate);
  state.counters["audio_s/s"] = benchmark::Counter(double(state.iterations()) * B * cfg.clip_s, benchmark::Counter::kIsRate);
  state.counters["gpu_ms/batch"] = 1e3 * busy / double(state.iterations() + 1);
  // Where the GPU time goes, ms per batch by stage (kernels/pipeline_gpu.h).
  const cuda::DevicePipeline::StageSeconds st = pipe.stage_seconds();
  const double per = 1e3 / double(st.batches - stages0.batches);
  state.counters["upload_ms"] = (st.upload - stages0.upload) * per;
  state.counters["dry_ms"] = (st.dry_signals - stages0.dry_signals) * per;
  state.counters["brir_ms"] = (st.brirs - stages0.brirs) * per;
  state.counters["conv_ms"] = (st.convolution - stages0.convolution) * per;
  state.counters["mix_ms"] = (st.mixing - stages0.mixing) * per;
  state.counters["teacher_ms"] = (st.teacher - stages0.teacher) * per;
  // Each stage's floor: its least global-memory traffic at the card's peak bandwidth (pipeline_floor_bytes).
  cuda::DevicePipeline::BatchShape shape = pipe.shape(0);
  shape.emitters = int(std::lround(emitters / double(k + 1)));
  state.counters["emitters"] = emitters / double(k + 1);
  const double gb_s = cuda::peak_memory_gb_s();
  if (gb_s > 0) {
    const PipelineFloorBytes f = pipeline_floor_bytes(shape);
    const double ms_per_byte = 1e3 / (gb_s * 1e9);
    state.counters["dry_floor_ms"] = f.dry * ms_per_byte, state.counters["brir_floor_ms"] = f.brir * ms_per_byte;
    state.counters["conv_floor_ms"] = f.conv * ms_per_byte, state.counters["mix_floor_ms"] = f.mix * ms_per_byte;
    state.counters["teacher_floor_ms"] = f.teacher * ms_per_byte;
    state.counters["floor_ms"] = f.total() * ms_per_byte;
    // The floor traffic over the GPU time: the batch's effective bandwidth, against peak_GB/s.
    state.counters["GB/s"] = f.total() / 1e9 / (busy / double(k + 1));
    state.counters["peak_GB/s"] = gb_s;
  }
}
BENCHMARK(BM_PipelineBatch)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// Classic DoA (GCC-PHAT, SRP-PHAT and MUSIC in one pass) for 256 examples of 4 s, frontal 1-degree grid,
// audio uploaded from the host (as bsim doa --device cuda does).
static void BM_ClassicDoaBatch(benchmark::State& state) {
  if (!cuda::device_available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const Config cfg;
  const HrirGrid grid = load_hrir_grid(cfg.hrtf.sofa.front(), cfg.sample_rate_hz, 1.0, 5.0);
  const ClassicDoa cpu(grid, cfg.features, false, 1.0);
  const int B = 256, T = 64000;
  std::vector<float> audio(size_t(B) * 2 * T);
  Rng rng(3, 0, Stream::noise);
  for (auto& v : audio) v = float(rng.normal());
  cuda::BatchClassicDoa gpu(cpu, B, T);
  for (auto _ : state) benchmark::DoNotOptimize(gpu.estimate(audio.data(), B));
  state.counters["us/example"] = benchmark::Counter(double(state.iterations()) * B, benchmark::Counter::kIsRate |
                                                                                        benchmark::Counter::kInvert);
}
BENCHMARK(BM_ClassicDoaBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
