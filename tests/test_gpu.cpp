// GPU kernels against the CPU reference (label gpu). Every test skips where no CUDA device is visible.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <gtest/gtest.h>

#include <cmath>

#include "io/error.h"
#include "kernels/batch_dsp.h"
#include "kernels/brir_gpu.h"
#include "kernels/device.h"
#include "kernels/pipeline_gpu.h"
#include "io/shard.h"
#include "sim/generate.h"
#include "sim/pipeline.h"
#include "sim/scene.h"
#include "sim/features.h"
#include "sim/fft.h"
#include "sim/brir.h"
#include "sim/room.h"
#include "sim/rng.h"
#include "tests/brir_check.h"
#include "tests/conv_check.h"
#include "tests/teacher_check.h"
#include "tests/temp_dir.h"
#include "io/audio.h"

using namespace bsim;
using test::nmse_db;

// Early responses (images up to the transition time) of 64 rooms in one launch: NMSE below -60 dB per ear
// (float atomics add in a varying order).
TEST(GpuBrir, MatchesCpuForRoomsOfVerySizesAndT60s) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 16000.0, 2.0, 5.0);
  test::expect_early_brirs_match_cpu<cuda::BrirRenderer>(grid, test::brir_cases(60), -60.0);
}

TEST(GpuBrir, LongResponsesAt48kHz) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 48000.0, 2.0, 5.0);
  test::expect_early_brirs_match_cpu<cuda::BrirRenderer>(
      grid, {{{9, 8, 3.5}, {7, 6, 1.2}, {2, 3, 1.6}, 2.0, 12.5, 0.1}, {{4, 3, 2.6}, {3, 2.5, 2}, {1, 1, 1}, 1.5, 0, 0.1}},
      -60.0);
}

TEST(GpuConvolution, MatchesCpuFftConvolution) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const int B = 8, F = 4, T = 64000, L = 8000;  // 4 s of speech, 0.5 s responses, BRIR L/R + direct L/R
  Rng rng(11, 0, Stream::noise);
  std::vector<float> x(size_t(B) * T), h(size_t(B) * F * L);
  for (auto& v : x) v = float(rng.normal());
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(rng.normal() * std::exp(-double(i % L) / 2000.0));
  for (const char* impl : {"fused", "cufft"})
    for (int block : {1024, 2048, 4096})
    for (int radix : {8, 16}) {
      if (std::string(impl) == "cufft" && (block != 2048 || radix != 8)) continue;  // these shape the fused kernel
      SCOPED_TRACE(std::string(impl) + " block " + std::to_string(block) + " radix " + std::to_string(radix));
      setenv("BSIM_CONV_KERNEL", impl, 1);
      cuda::BatchConvolver conv(B, F, T, L, block, radix);
      unsetenv("BSIM_CONV_KERNEL");
      EXPECT_EQ(conv.fused(), std::string(impl) == "fused");
      std::vector<float> out(size_t(B) * F * T, std::nanf(""));
      conv.run(B, x, h, out);
      test::expect_convolution_matches_cpu(out, x, h, B, F, T, L);
    }
}

// A kernel's dynamic shared-memory limit belongs to the kernel, not to the object that set it: a second convolver
// with smaller transforms, constructed while the first lives, must not lower the limit the first's launches need.
TEST(GpuConvolution, ASecondConvolverLeavesTheFirstWorking) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const int B = 1, F = 2, T = 5000, L = 1500;
  Rng rng(13, 0, Stream::noise);
  std::vector<float> x(size_t(B) * T), h(size_t(B) * F * L);
  for (auto& v : x) v = float(rng.normal());
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(rng.normal() * std::exp(-double(i % L) / 400.0));
  cuda::BatchConvolver big(B, F, T, L, 4096, 16);   // transforms of 8,192 points: ~150 kB of shared memory
  cuda::BatchConvolver small(B, F, T, L, 1024, 16); // 2,048 points: ~37 kB
  std::vector<float> out(size_t(B) * F * T, std::nanf(""));
  big.run(B, x, h, out);
  test::expect_convolution_matches_cpu(out, x, h, B, F, T, L);
  small.run(B, x, h, out);
  test::expect_convolution_matches_cpu(out, x, h, B, F, T, L);
}

// A launch shape whose shared memory no device allows is an input error that says what fits, at construction:
// not a CUDA error from cudaFuncSetAttribute, nor a failed launch later.
TEST(GpuConvolution, BlocksTooLargeForSharedMemorySayWhatFits) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  try {
    cuda::BatchConvolver conv(1, 2, 20000, 3000, 8192, 16);
    FAIL() << "blocks of 8192 (288 KiB of shared memory) were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("use blocks of at most 4096"), std::string::npos) << e.what();
  }
  FeatureConfig fc;
  cuda::FusedTeacherLaunch launch;
  launch.frames_per_block = 128;
  try {
    cuda::BatchTeacher teacher(fc, 1, 16000, launch);
    if (teacher.fused()) FAIL() << "128 frames of 512 points per block (1 MiB of shared memory) were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("take fewer frames per block"), std::string::npos) << e.what();
  }
}

TEST(GpuTeacher, MatchesCpuFeaturesForEveryKind) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const int B = 6, T = 16000;
  Rng rng(12, 0, Stream::noise);
  std::vector<float> audio(size_t(B) * 2 * T);
  for (int b = 0; b < B; ++b)  // correlated pairs with a per-example lag, a silent and a -50 dB stretch
    for (int i = 0; i < T; ++i) {
      const float v = (i > 6000 && i < 7000) ? 0.0f : (i > 9000 && i < 9800 ? 3e-3f : 1.0f) * float(rng.normal());
      audio[size_t(b) * 2 * T + i] = v;
      audio[(size_t(b) * 2 + 1) * T + std::min(T - 1, i + b)] = 0.8f * v;
    }
  // The framing + cuFFT path, and the one-pass kernel at its default launch shape and the others benchmarked.
  const std::vector<std::pair<const char*, cuda::FusedTeacherLaunch>> variants{
      {"cufft", {}}, {"fused", {}}, {"fused", {4, 256}}, {"fused", {8, 512}}, {"fused", {16, 512}}};
  for (const auto& [impl, launch] : variants)
    for (const char* kind : {"gcc_phat", "ipd", "ild", "ipd_ild"}) {
      SCOPED_TRACE(std::string(kind) + " " + impl + " frames/block " + std::to_string(launch.frames_per_block) +
                   " threads " + std::to_string(launch.threads));
      FeatureConfig fc;
      fc.teacher = kind;
      setenv("BSIM_TEACHER_KERNEL", impl, 1);
      cuda::BatchTeacher gpu(fc, B, T, launch);
      unsetenv("BSIM_TEACHER_KERNEL");
      EXPECT_EQ(gpu.fused(), std::string(impl) == "fused");
      std::vector<float> out;
      gpu.run(B, audio, out);
      ASSERT_EQ(out.size(), size_t(gpu.n_features()) * gpu.n_frames() * B);
      test::expect_teacher_matches_cpu(out, audio, B, T, fc);
    }
}

// The implementation switches read from the environment: the default when unset, the value when valid, a
// one-line InputError naming the variable otherwise. Host code: runs without a device.
TEST(KernelChoice, DefaultValueOrAnErrorNamingTheVariable) {
  unsetenv("BSIM_PIPELINE_CONV");
  EXPECT_EQ(cuda::kernel_choice("BSIM_PIPELINE_CONV", "cufft"), "cufft");
  setenv("BSIM_PIPELINE_CONV", "fused", 1);
  EXPECT_EQ(cuda::kernel_choice("BSIM_PIPELINE_CONV", "cufft"), "fused");
  setenv("BSIM_PIPELINE_CONV", "fast", 1);
  try {
    cuda::kernel_choice("BSIM_PIPELINE_CONV", "cufft");
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "BSIM_PIPELINE_CONV='fast': use fused or cufft (or leave it unset)");
  }
  unsetenv("BSIM_PIPELINE_CONV");
}

// --device cpu|cuda|cuda:N: the index it names, plain cuda following a launcher's local rank (LOCAL_RANK before
// SLURM_LOCALID, modulo the devices), a one-line InputError naming the flag or the variable otherwise. Host
// code: runs without a device.
TEST(DeviceChoice, TheFlagOrTheLocalRankNamesTheDevice) {
  std::map<std::string, std::string> env;
  const auto getenv_fake = [&env](const char* var) -> const char* {
    const auto it = env.find(var);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  const auto index = [&](const std::string& spec, int n) { return cuda::cuda_device_index(spec, n, getenv_fake); };
  const auto error = [&](const std::string& spec, int n) -> std::string {
    try {
      index(spec, n);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(index("cuda", 4), 0);
  EXPECT_EQ(index("cuda:2", 4), 2);
  EXPECT_EQ(error("cuda:4", 4), "--device cuda:4: 4 CUDA device(s) visible (cuda:0 .. cuda:3; `bsim devices`)");
  EXPECT_EQ(error("cuda:1", 1), "--device cuda:1: 1 CUDA device(s) visible (cuda:0; `bsim devices`)");
  for (const char* bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1.5", "cuda: 1"})
    EXPECT_EQ(error(bad, 4), std::string("--device '") + bad +
                                 "': the device index after cuda: must be a whole number (cuda:0)");
  EXPECT_EQ(error("gpu", 4), "--device must be cpu, cuda or cuda:N, not 'gpu'");
  env["SLURM_LOCALID"] = "3";
  EXPECT_EQ(index("cuda", 4), 3);
  env["LOCAL_RANK"] = "6";  // torchrun's, before SLURM's; more ranks than devices share them in turn
  EXPECT_EQ(index("cuda", 4), 2);
  EXPECT_EQ(index("cuda:1", 4), 1);  // the flag's index wins
  env["LOCAL_RANK"] = "first";
  EXPECT_EQ(error("cuda", 4), "LOCAL_RANK='first' is not a local rank: unset it or use --device cuda:N");
}

// Both late-tail implementations (BSIM_TAIL_KERNEL): cuFFT's batched transforms and the one-kernel tail in
// shared memory, each against the CPU's tails by their statistics.
TEST(GpuBrirTail, DecayAndLevelMatchTheCpuTail) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 16000.0, 2.0, 5.0);
  for (const char* impl : {"cufft", "fused"}) {
    SCOPED_TRACE(std::string("BSIM_TAIL_KERNEL=") + impl);
    setenv("BSIM_TAIL_KERNEL", impl, 1);
    test::expect_tails_match_cpu<cuda::BrirRenderer>(grid, compute_diffuse_field(grid));
  }
  unsetenv("BSIM_TAIL_KERNEL");
}

// --- the whole pipeline -----------------------------------------------------------------------------------
namespace {

Config pipeline_config() {
  Config cfg;
  cfg.clip_s = 2.0;
  cfg.seed = 3;
  cfg.room.anechoic_prob = 0.15;  // some direct-path-only scenes too
  cfg.hrtf.head_scales = {0.9, 1.0, 1.12};  // scaled heads: grids of different lengths, picked per example
  cfg.speech.tilt_db_per_octave = {-6, 6};  // tilted voices: the weight on the GPU's N-point spectra
  return cfg;
}

double energy(const float* x, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) e += double(x[i]) * x[i];
  return e;
}

// Energy of the first difference over the energy: a one-number spectral tilt (high for bright signals).
double brightness_db(const float* x, size_t n) {
  double d = 0;
  for (size_t i = 1; i < n; ++i) d += double(x[i] - x[i - 1]) * (x[i] - x[i - 1]);
  return 10 * std::log10(d / std::max(energy(x, n), 1e-300));
}

// NMSE (dB) of the GPU's and the CPU's rendering of one signal after undoing each side's output gain.
double ungained_nmse_db(const float* gpu, double gpu_gain, const float* cpu, double cpu_gain, size_t n) {
  std::vector<float> a(n), r(n);
  for (size_t i = 0; i < n; ++i) a[i] = float(gpu[i] / gpu_gain), r[i] = float(cpu[i] / cpu_gain);
  return nmse_db(a.data(), r.data(), n);
}

// Reverberant over clean energy (dB) of example `index` on the CPU with the target's late tail drawn from K
// other substreams of Stream::tail: the spread that the random tail alone gives this scene, by which the GPU's
// own draw is judged. A dull (low-tilted) voice puts its energy in a few low bins, where a random tail's
// spectrum is far from its mean: the spread ranges from 0.02 dB to 2 dB over the test's scenes.
struct Spread {
  double mean_db = 0, sd_db = 0;
};
Spread spread_of(const std::vector<double>& db) {
  Spread t;
  const double K = double(db.size());
  for (double d : db) t.mean_db += d / K;
  for (double d : db) t.sd_db += (d - t.mean_db) * (d - t.mean_db) / (K - 1);
  t.sd_db = std::sqrt(t.sd_db);
  return t;
}
Spread reverberant_db_spread(const Renderer& r, uint64_t index, int K) {
  const ExamplePlan p = r.plan(index);
  const Scene& s = p.scene;
  const int T = r.n_samples(), g = r.grid_index(s);
  const std::vector<float> speech = r.assemble(p.speech, T);
  std::vector<float> rev(size_t(2) * T), clean(size_t(2) * T);
  std::vector<double> db;
  for (int k = 0; k < K; ++k) {
    Rng tail(r.config().seed, index, Stream::tail, uint64_t(1000 + k));
    Brir b;
    render_brir(r.brir_request(s, s.source_m), &r.grids()[size_t(g)], &r.diffuse_fields()[size_t(g)], tail, b);
    convolve_many(speech.data(), T, {b.response[0].data(), b.response[1].data(), b.direct[0].data(), b.direct[1].data()},
                  b.length, T, {rev.data(), rev.data() + T, clean.data(), clean.data() + T},
                  SpectralTilt{float(s.speech_tilt_db_per_octave), float(r.config().sample_rate_hz)});
    db.push_back(10 * std::log10(energy(rev.data(), rev.size()) / energy(clean.data(), clean.size())));
  }
  return spread_of(db);
}

// Brightness (dB) of example `index`'s noise on the CPU over K other draws of its random parts (synthetic
// noise, each emitter's late tail). Brown or pink noise puts its energy in a few low bins, so one draw is far
// from the mean: spreads from ~0 to over 1 dB over the test's scenes (five HRTF sets, example 40: +-1.1 dB).
Spread noise_brightness_spread(const Renderer& r, uint64_t index, int K) {
  const ExamplePlan p = r.plan(index);
  std::vector<double> db;
  for (int k = 1; k <= K; ++k) {
    const std::vector<float> noise = r.render_noise(p, index, uint64_t(k));
    db.push_back(brightness_db(noise.data(), noise.size()));
  }
  return spread_of(db);
}

// How many of the CPU's standard deviations one more draw (the GPU's) is from the mean of K draws (t with K-1
// degrees of freedom), with `floor_db` for what is nearly deterministic (float rounding, no random part).
double z_of(double value_db, const Spread& cpu, int K, double floor_db) {
  return (value_db - cpu.mean_db) / std::sqrt(cpu.sd_db * cpu.sd_db * (1.0 + 1.0 / K) + floor_db * floor_db);
}

}  // namespace

// The GPU renders the CPU's plan: same scenes and labels, the same clean signal (speech through the direct
// path), exact SNR and output level, teacher features of its own clean signal as the CPU computes them, and
// the random parts (late tail, synthetic noise) alike in level and spectrum.
namespace {
// The CPU's spreads per example, kept across the calls (each costs K renderings).
struct CpuSpreads {
  std::map<uint64_t, Spread> reverberant_db, noise_brightness_db;
};
template <class Compute>
const Spread& remembered(std::map<uint64_t, Spread>& known, uint64_t index, Compute compute) {
  auto it = known.find(index);
  if (it == known.end()) it = known.emplace(index, compute()).first;
  return it->second;
}

// The GPU's noise brightness (the noise's spectrum as one number: diffuse-field or BRIR colouring, the noise's
// colour) as one more draw of the CPU's: within 5 standard deviations of K CPU draws of the random parts, plus
// 0.05 dB for rounding. Returns its z.
double expect_noise_brightness_like_cpu(const Renderer& renderer, uint64_t index, NoiseType type, const float* noise,
                                        size_t n, std::map<uint64_t, Spread>& known, int K) {
  const Spread& cpu = remembered(known, index, [&] { return noise_brightness_spread(renderer, index, K); });
  const double gpu = brightness_db(noise, n), z = z_of(gpu, cpu, K, 0.05);
  std::printf("  noise draw %3llu (%s): brightness GPU %6.2f dB, CPU %6.2f +- %.2f dB (z %+.2f)\n",
              (unsigned long long)index, noise_type_name(type), gpu, cpu.mean_db, cpu.sd_db, z);
  EXPECT_LT(std::fabs(z), 5.0) << "noise brightness: GPU " << gpu << " dB, CPU's draws " << cpu.mean_db << " +- "
                               << cpu.sd_db << " dB";
  return z;
}

// One convolution implementation of the pipeline (BSIM_PIPELINE_CONV) against the CPU's plan.
void expect_pipeline_renders_the_cpu_plan(const Renderer& renderer, const char* conv, CpuSpreads& spreads) {
  SCOPED_TRACE(std::string("BSIM_PIPELINE_CONV=") + conv);
  const Config& cfg = renderer.config();
  const int B = 48, T = renderer.n_samples();
  setenv("BSIM_PIPELINE_CONV", conv, 1);
  // Built for 5 more than the batch: a partial batch, whose row transforms run past its last example.
  cuda::DevicePipeline gpu(renderer, B + 5, 2, true);
  unsetenv("BSIM_PIPELINE_CONV");
  std::vector<uint64_t> idx;
  for (int i = 0; i < B; ++i) idx.push_back(uint64_t(100 + i));
  gpu.enqueue(idx, 1);
  const std::vector<Example> meta = gpu.wait(1);
  const auto out = gpu.copy_outputs(1);
  // The stage times partition the batch's GPU time (events between the stages; copy_outputs waits again
  // without counting the batch twice).
  const cuda::DevicePipeline::StageSeconds st = gpu.stage_seconds();
  EXPECT_EQ(st.batches, 1);
  EXPECT_NEAR(st.upload + st.dry_signals + st.brirs + st.convolution + st.mixing + st.teacher, gpu.busy_seconds(),
              1e-5 + 1e-3 * gpu.busy_seconds());
  for (double v : {st.dry_signals, st.brirs, st.convolution, st.mixing, st.teacher}) EXPECT_GT(v, 0.0);
  const FeatureShape fs = teacher_shape(cfg.features, T);
  const size_t per_audio = size_t(2) * T, per_feat = size_t(fs.n_features) * fs.n_frames;
  ASSERT_EQ(out.clean.size(), B * per_audio);
  ASSERT_EQ(out.teacher.size(), B * per_feat);
  int counted[3] = {0, 0, 0};
  double rev_db_sum = 0, z_sum = 0, noise_z_sum = 0;
  int rev_n = 0;
  constexpr int kTailDraws = 24;
  for (int b = 0; b < B; ++b) {
    const Example cpu = renderer.render(idx[size_t(b)]);
    const Example& g = meta[size_t(b)];
    SCOPED_TRACE("example " + std::to_string(idx[size_t(b)]) + " (" + noise_type_name(cpu.scene.noise_type) +
                 (cpu.scene.anechoic ? ", anechoic)" : ")"));
    ++counted[int(cpu.scene.noise_type)];
    EXPECT_EQ(g.scene.azimuth_deg, cpu.scene.azimuth_deg);
    EXPECT_EQ(g.scene.head_scale, cpu.scene.head_scale);
    EXPECT_EQ(g.scene.speech_tilt_db_per_octave, cpu.scene.speech_tilt_db_per_octave);
    EXPECT_EQ(g.scene.snr_db, cpu.scene.snr_db);
    EXPECT_EQ(g.speech_index, cpu.speech_index);
    EXPECT_EQ(g.noise_index, cpu.noise_index);
    EXPECT_EQ(g.n_images, cpu.n_images);
    EXPECT_NEAR(g.transition_s, cpu.transition_s, 1e-6);
    EXPECT_NEAR(g.direct_delay_s, cpu.direct_delay_s, 1e-12);
    const float* clean = out.clean.data() + b * per_audio;
    const float* rev = out.reverberant.data() + b * per_audio;
    const float* noise = out.noise.data() + b * per_audio;
    const float* aug = out.augmented.data() + b * per_audio;
    // Clean: deterministic -> sample by sample, after undoing each side's output gain.
    EXPECT_LT(ungained_nmse_db(clean, g.output_gain, cpu.clean.data(), cpu.output_gain, per_audio), -60.0) << "clean";
    // SNR exact, mixture = reverberant + noise, level -26 dBFS RMS unless the 0.99 peak limit applies.
    EXPECT_NEAR(10 * std::log10(energy(rev, per_audio) / energy(noise, per_audio)), cpu.scene.snr_db, 0.01);
    float peak = 0;
    for (size_t i = 0; i < per_audio; ++i) {
      ASSERT_NEAR(aug[i], rev[i] + noise[i], 1e-6f + 1e-6f * std::fabs(aug[i]));
      peak = std::max({peak, std::fabs(aug[i]), std::fabs(clean[i])});
      ASSERT_EQ(out.augmented_half[b * per_audio + i], float_to_half(aug[i]));
      ASSERT_EQ(out.clean_half[b * per_audio + i], float_to_half(clean[i]));
    }
    const double rms = std::sqrt(energy(aug, per_audio) / double(per_audio));
    EXPECT_TRUE(std::fabs(rms - kMixtureRms) < 1e-4 || std::fabs(peak - kMaxPeak) < 1e-4) << rms << " " << peak;
    // Reverberant energy relative to clean: the tail is random on both sides, its energy is not.
    const double cpu_ratio = energy(cpu.reverberant.data(), per_audio) / energy(cpu.clean.data(), per_audio);
    const double gpu_ratio = energy(rev, per_audio) / energy(clean, per_audio);
    const double d_db = 10 * std::log10(gpu_ratio / cpu_ratio);
    if (cpu.scene.anechoic) {
      EXPECT_LT(std::fabs(d_db), 1e-3) << "reverberant / clean energy";
    } else {
      // The GPU's tail is one more random draw: within 5 standard deviations of the CPU's draws (t with 23
      // degrees of freedom: 5e-5 per scene by chance), plus 0.05 dB for where the tail hardly counts.
      const Spread& cpu_tails = remembered(spreads.reverberant_db, idx[size_t(b)], [&] {
        return reverberant_db_spread(renderer, idx[size_t(b)], kTailDraws);
      });
      const double gpu_db = 10 * std::log10(gpu_ratio);
      const double z = z_of(gpu_db, cpu_tails, kTailDraws, 0.05);
      std::printf("  tail draw %3llu: tilt %+5.1f dB/oct, head x%.2f, T60 %.2f s: reverberant/clean GPU %6.2f dB, "
                  "CPU %6.2f +- %.2f dB (z %+.2f)\n", (unsigned long long)idx[size_t(b)],
                  cpu.scene.speech_tilt_db_per_octave, cpu.scene.head_scale, cpu.scene.t60_s, gpu_db,
                  cpu_tails.mean_db, cpu_tails.sd_db, z);
      EXPECT_LT(std::fabs(z), 5.0) << "reverberant / clean energy: GPU " << gpu_db << " dB, CPU's tails "
                                   << cpu_tails.mean_db << " +- " << cpu_tails.sd_db << " dB";
      rev_db_sum += d_db, z_sum += z, ++rev_n;
    }
    noise_z_sum += expect_noise_brightness_like_cpu(renderer, idx[size_t(b)], cpu.scene.noise_type, noise,
                                                    per_audio, spreads.noise_brightness_db, kTailDraws);
    // Teacher of the GPU's own clean signal, as the CPU computes it.
    std::vector<float> ref;
    teacher_features(clean, clean + T, T, cfg.features, ref);
    double mad = 0;
    for (size_t i = 0; i < per_feat; ++i) mad += std::fabs(double(out.teacher[b * per_feat + i]) - ref[i]);
    EXPECT_LT(mad / double(per_feat), 1e-3) << "teacher";
  }
  EXPECT_GT(counted[0], 0);
  EXPECT_GT(counted[1], 0);
  EXPECT_GT(counted[2], 0);
  ASSERT_GT(rev_n, 10);
  EXPECT_LT(std::fabs(rev_db_sum / rev_n), 0.5) << "mean reverberant/clean energy offset GPU vs CPU (dB)";
  // A bias of the GPU's tail level shifts every scene's z the same way: their mean is within 0.15 of 0 by chance.
  EXPECT_LT(std::fabs(z_sum / rev_n), 0.75) << "mean z of the reverberant / clean energy";
  // The same for the noise's brightness (a tilt of the GPU's tail or noise spectra against the CPU's).
  EXPECT_LT(std::fabs(noise_z_sum / B), 0.75) << "mean z of the noise brightness";
}
}  // namespace

TEST(GpuPipeline, RendersTheCpuPlan) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const Renderer renderer(pipeline_config());
  CpuSpreads spreads;
  for (const char* conv : {"cufft", "fused"}) expect_pipeline_renders_the_cpu_plan(renderer, conv, spreads);
}

// Configurations the tests above do not reach, each against the CPU's plan on what is deterministic (labels,
// image counts, the clean signal, the SNR, the teacher of the GPU's clean): 48 kHz with the IPD/ILD teacher,
// several HRTF sets of different lengths and native rates, a batch over the 256 rows one cuFFT execution
// covers (the row chunks' slack), recorded point noise (files of other rates, one shorter than a clip),
// direct-path-only rooms with many babble talkers and white noise; each with both pipeline convolutions.
TEST(GpuPipeline, OtherConfigurationsRenderTheCpuPlan) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  struct Variant {
    const char* name;
    int batch;
    std::function<bool(Config&)> set;  // false: not available here (the shared HRTF sets)
  };
  const std::string shared = std::getenv("BSIM_SHARED_HRTF_DIR") ? std::getenv("BSIM_SHARED_HRTF_DIR") : "";
  // Recorded point noise: two files of other rates and lengths (one shorter than a clip), gathered from the
  // device arena under their own keys.
  const bsim_tests::TempDir noise_dir("gpu_recorded_noise");
  {
    Rng rng(23, 0, Stream::noise);
    for (auto [name, fs, n] : {std::make_tuple("fan.wav", 44100.0, 44100), std::make_tuple("hum.wav", 8000.0, 1500)}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = float(0.1 * rng.normal());
      write_wav((noise_dir / name).string(), {x.data()}, n, fs);
    }
  }
  const std::vector<Variant> variants{
      {"48 kHz, IPD/ILD teacher", 4,
       [](Config& c) { return c.sample_rate_hz = 48000, c.clip_s = 0.5, c.features.teacher = "ipd_ild", true; }},
      {"five HRTF sets", 10,
       [&](Config& c) {
         if (shared.empty() || !std::ifstream(shared + "/FHK_HRIR_L2354.sofa")) return false;
         c.hrtf.sofa = {"/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", shared + "/MIT_KEMAR_large_pinna.sofa",
                        shared + "/CIPIC_subject_003_hrir_final.sofa", shared + "/LISTEN_1002_IRC_1002_C_HRIR.sofa",
                        shared + "/FHK_HRIR_L2354.sofa"};
         return c.clip_s = 0.5, true;
       }},
      // After a first batch of 200 others: the smallest speech arena (64 MB) cannot hold both batches' speech,
      // so the pipeline starts its arena over for the checked one (checked by hand: 42 MB in use, 58 MB needed).
      {"a batch of 300 after another, diffuse noise, the smallest speech arena", 300,
       [](Config& c) {
         c.noise.type_weights = {{"diffuse", 1.0}};
         c.speech.cache_mb = 0;
         return c.clip_s = 0.25, true;
       }},
      {"recorded point noise", 6,
       [&](Config& c) {
         c.noise.roots = {noise_dir.string()};
         c.noise.type_weights = {{"point", 1.0}};
         return c.clip_s = 0.5, true;
       }},
      {"anechoic, babble of 6-8 talkers, white noise", 6,
       [](Config& c) {
         c.room.anechoic_prob = 1.0;
         c.noise.type_weights = {{"babble", 1.0}};
         c.noise.babble_talkers = {6, 8};
         c.noise.color = "white";
         return c.clip_s = 0.5, true;
       }},
  };
  for (const Variant& v : variants) {
    Config cfg;
    cfg.seed = 17;
    if (!v.set(cfg)) {
      std::printf("  skipped: %s (BSIM_SHARED_HRTF_DIR does not name ../shared/hrtf)\n", v.name);
      continue;
    }
    const Renderer renderer(cfg);
    constexpr int kNoiseDraws = 24;
    std::map<uint64_t, Spread> noise_spreads;  // the CPU's, for both convolutions
    const int B = v.batch, T = renderer.n_samples();
    std::vector<uint64_t> idx;
    for (int i = 0; i < B; ++i) idx.push_back(uint64_t(40 + 3 * i));
    for (const char* conv : {"cufft", "fused"}) {
      SCOPED_TRACE(std::string(v.name) + ", BSIM_PIPELINE_CONV=" + conv);
      const auto t0 = std::chrono::steady_clock::now();
      setenv("BSIM_PIPELINE_CONV", conv, 1);
      cuda::DevicePipeline gpu(renderer, B, 1, false);
      unsetenv("BSIM_PIPELINE_CONV");
      if (B == 300) {  // a partial batch first: ~42 MB of speech, ~58 MB more for the checked batch
        std::vector<uint64_t> before;
        for (int i = 0; i < 200; ++i) before.push_back(uint64_t(5000 + i));
        gpu.enqueue(before, 0);
      }
      gpu.enqueue(idx, 0);
      const std::vector<Example> meta = gpu.wait(0);
      const auto out = gpu.copy_outputs(0);
      const FeatureShape fs = teacher_shape(cfg.features, T);
      const size_t per_audio = size_t(2) * T, per_feat = size_t(fs.n_features) * fs.n_frames;
      ASSERT_EQ(out.clean.size(), B * per_audio);
      int checked = 0;
      for (int b = 0; b < B; b += std::max(1, B / 12), ++checked) {  // a dozen examples spread over the batch
        const Example cpu = renderer.render(idx[size_t(b)]);
        const Example& g = meta[size_t(b)];
        SCOPED_TRACE("example " + std::to_string(idx[size_t(b)]));
        EXPECT_EQ(g.scene.azimuth_deg, cpu.scene.azimuth_deg);
        EXPECT_EQ(g.scene.hrtf_index, cpu.scene.hrtf_index);
        EXPECT_EQ(g.scene.snr_db, cpu.scene.snr_db);
        EXPECT_EQ(g.scene.noise_type, cpu.scene.noise_type);
        EXPECT_EQ(g.noise_index, cpu.noise_index);
        EXPECT_EQ(g.n_images, cpu.n_images);
        const float* clean = out.clean.data() + b * per_audio;
        const float* rev = out.reverberant.data() + b * per_audio;
        const float* noise = out.noise.data() + b * per_audio;
        EXPECT_LT(ungained_nmse_db(clean, g.output_gain, cpu.clean.data(), cpu.output_gain, per_audio), -60.0)
            << "clean";
        EXPECT_NEAR(10 * std::log10(energy(rev, per_audio) / energy(noise, per_audio)), cpu.scene.snr_db, 0.01);
        // The noise's spectrum (recorded, babble, white or pink; its own BRIR's colouring), as in RendersTheCpuPlan.
        expect_noise_brightness_like_cpu(renderer, idx[size_t(b)], cpu.scene.noise_type, noise, per_audio,
                                         noise_spreads, kNoiseDraws);
        if (cpu.scene.anechoic)  // no tail: the reverberant signal is deterministic too
          EXPECT_LT(ungained_nmse_db(rev, g.output_gain, cpu.reverberant.data(), cpu.output_gain, per_audio), -60.0)
              << "reverberant (anechoic)";
        // The teacher of the GPU's clean signal: mean absolute difference as in tests/teacher_check.h (1e-2 where
        // the ILD's dB count). Not its bound on single values: at 48 kHz the speech (22.05 kHz recordings) leaves
        // the upper half of the bins near eps, where float rounding moves ~10 % of the ILD values by over 0.01 dB.
        std::vector<float> ref;
        teacher_features(clean, clean + T, T, cfg.features, ref);
        double mad = 0;
        for (size_t i = 0; i < per_feat; ++i) mad += std::fabs(double(out.teacher[b * per_feat + i]) - ref[i]);
        const bool db = cfg.features.teacher == "ild" || cfg.features.teacher == "ipd_ild";
        EXPECT_LT(mad / double(per_feat), db ? 1e-2 : 1e-3) << "teacher";
      }
      std::printf("  %s, %s: %d of %d examples checked against the CPU (%.1f s)\n", v.name, conv, checked, B,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
}

// A slot is reused correctly: rendering the same indices again after other work gives the same signals, bit for
// bit (the pipeline is a function of the plan and the counters).
TEST(GpuPipeline, DeterministicAcrossSlotsAndBatches) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const Config cfg = pipeline_config();
  const Renderer renderer(cfg);
  std::vector<uint64_t> a, other;
  for (int i = 0; i < 16; ++i) a.push_back(uint64_t(7 + i)), other.push_back(uint64_t(500 + i));
  // Each convolution: the same batch again after another one (nothing of the other batch may be left in the
  // rows each stage reuses).
  std::map<std::string, cuda::DevicePipeline::HostOutputs> by_conv;
  for (const char* conv : {"cufft", "fused"}) {
    SCOPED_TRACE(std::string("BSIM_PIPELINE_CONV=") + conv);
    setenv("BSIM_PIPELINE_CONV", conv, 1);
    cuda::DevicePipeline gpu(renderer, 16, 2, false);
    unsetenv("BSIM_PIPELINE_CONV");
    gpu.enqueue(a, 0);
    const auto first = gpu.copy_outputs(0);
    gpu.enqueue(other, 1);
    gpu.enqueue(a, 0);
    const auto second = gpu.copy_outputs(0);
    // The same bits (no atomics decide an order of float sums anywhere in the pipeline; H200 run 8 found the
    // image slots and the teacher's power doing so): a resumed or re-run shard equals the first.
    const std::pair<const std::vector<float>*, const std::vector<float>*> outputs[] = {
        {&first.clean, &second.clean}, {&first.reverberant, &second.reverberant}, {&first.noise, &second.noise},
        {&first.augmented, &second.augmented}, {&first.teacher, &second.teacher}};
    const char* names[] = {"clean", "reverberant", "noise", "augmented", "teacher"};
    for (size_t o = 0; o < 5; ++o) {
      const std::vector<float>&x = *outputs[o].first, &y = *outputs[o].second;
      ASSERT_EQ(x.size(), y.size()) << names[o];
      size_t differ = 0;
      for (size_t i = 0; i < x.size(); ++i) differ += std::memcmp(&x[i], &y[i], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0u) << names[o] << ": values that differ between two renders of one batch, of " << x.size();
    }
    by_conv[conv] = first;
  }
  // The two convolutions of one batch: the same BRIRs (each ending where the CPU's does, which the partitioned
  // path reads no further than) and the same noise streams, so only the convolutions' float rounding differs.
  const auto& f = by_conv["fused"];
  const auto& c = by_conv["cufft"];
  EXPECT_LT(nmse_db(f.clean.data(), c.clean.data(), c.clean.size()), -90.0);
  EXPECT_LT(nmse_db(f.reverberant.data(), c.reverberant.data(), c.reverberant.size()), -90.0);
  EXPECT_LT(nmse_db(f.augmented.data(), c.augmented.data(), c.augmented.size()), -90.0);
}

namespace {
// The message of the error a pipeline's construction throws ("" if it fits).
std::string pipeline_error(const Renderer& renderer, int max_batch) {
  try {
    cuda::DevicePipeline gpu(renderer, max_batch, 2, false);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// A batch far beyond the card's memory: one error that says what did not fit and what to do, not a bare
// "out of memory" from cudaMalloc.
TEST(GpuPipeline, TooLargeABatchSaysWhatToDo) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const Config cfg = pipeline_config();
  const Renderer renderer(cfg);
  const std::string batch = pipeline_error(renderer, 1000000);
  EXPECT_NE(batch.find("batches of 1000000 examples"), std::string::npos) << batch;
  EXPECT_NE(batch.find("GiB requested"), std::string::npos) << batch;
  EXPECT_NE(batch.find("use smaller batches"), std::string::npos) << batch;
  // The speech arena is sized by speech.cache_mb, not by the batch: its error names that key.
  Config huge_cache = cfg;
  huge_cache.speech.cache_mb = 1 << 30;  // 1 PiB
  const std::string arena = pipeline_error(Renderer(huge_cache), 4);
  EXPECT_NE(arena.find("lower speech.cache_mb"), std::string::npos) << arena;
  EXPECT_EQ(arena.find("use smaller batches"), std::string::npos) << arena;
  cuda::DevicePipeline after(renderer, 4, 2, false);  // the failed ones left nothing behind that blocks the next
  after.enqueue({1, 2, 3, 4}, 0);
  EXPECT_EQ(after.wait(0).size(), 4u);
}

// A batch whose speech (with the arena's present contents) outgrows the smallest arena (64 MB): the arena
// starts over with that batch alone, and if the batch's own speech does not fit either, one error names
// speech.cache_mb. Before 2026-11-26 only the speech not yet on the device was counted, and the restarted
// arena was filled past its end.
TEST(GpuPipeline, ABatchWhoseSpeechOutgrowsTheArenaSaysWhatToDo) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  Config cfg;
  cfg.clip_s = 0.25;
  cfg.noise.type_weights = {{"diffuse", 1.0}};
  cfg.speech.cache_mb = 0;
  const Renderer renderer(cfg);
  const size_t arena = size_t(64) * 1024 * 1024 / sizeof(float);
  // Examples in order, each adding the floats of its utterances not yet counted.
  std::set<int> files;
  size_t floats = 0;
  const auto add = [&](uint64_t i) {
    for (const ClipSegment& sg : renderer.plan(i).speech.segments)
      if (files.insert(sg.file).second) floats += renderer.utterance(sg.file)->size();
  };
  std::vector<uint64_t> first, second;
  for (uint64_t i = 0; floats < arena * 6 / 10; ++i) add(i), first.push_back(i);  // ~60 % of the arena
  second = first;
  for (uint64_t i = first.size(); floats <= arena; ++i) add(i), second.push_back(i);  // the same, then past it
  SCOPED_TRACE(std::to_string(first.size()) + " then " + std::to_string(second.size()) + " examples");
  cuda::DevicePipeline gpu(renderer, int(second.size()), 1, false);
  gpu.enqueue(first, 0);
  gpu.wait(0);
  try {
    gpu.enqueue(second, 0);
    FAIL() << "a batch with " << floats * 4 / (1024 * 1024) << " MB of speech fitted a 64 MB arena";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("raise speech.cache_mb"), std::string::npos) << e.what();
  }
}

// bsim generate --device cuda writes a complete shard with the CPU's scenes and labels.
TEST(GpuPipeline, GenerateWritesTheCpuScenes) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  // float16 shards take the device's conversion and pinned copies; float32 shards copy the float outputs.
  struct Run {
    const char* dtype;
    int rooms, block;
    double clean_db;  // the clean signal against the CPU's, after undoing the output gains
  };
  for (const Run& run : {Run{"float16", 70, 32, -50.0}, Run{"float32", 10, 4, -60.0}}) {  // 2 blocks + a partial
    SCOPED_TRACE(std::string("shard.audio_dtype=") + run.dtype);
    Config cfg = pipeline_config();
    cfg.clip_s = 1.0;
    cfg.shard.audio_dtype = run.dtype;
    const std::string dir = ::testing::TempDir();
    GenerateOptions opt;
    opt.rooms = run.rooms;
    opt.quiet = true;
    opt.force = true;
    opt.out = dir + "/gpu.h5";
    const int block = run.block;
    generate_shard(cfg, opt, [block](const Renderer& r) { return cuda::make_cuda_backend(r, block); });
    opt.out = dir + "/cpu.h5";
    generate_shard(cfg, opt);
    const ShardReader g(dir + "/gpu.h5"), c(dir + "/cpu.h5");
    ASSERT_TRUE(g.info().complete);
    ASSERT_EQ(g.info().n_done, run.rooms);
    for (const char* col :
         {"scene/azimuth_deg", "scene/snr_db", "scene/noise_type", "scene/n_images", "scene/speech_index"}) {
      std::vector<float> a, b;
      g.read(col, 0, run.rooms, a), c.read(col, 0, run.rooms, b);
      EXPECT_EQ(a, b) << col;
    }
    const int first = run.rooms - 10;  // the last ten: the partial block
    std::vector<float> ga, ca, gg, cg;
    g.read("clean", first, 10, ga), c.read("clean", first, 10, ca);
    g.read("scene/output_gain", first, 10, gg), c.read("scene/output_gain", first, 10, cg);
    const size_t per = ga.size() / 10;
    for (int i = 0; i < 10; ++i)
      EXPECT_LT(ungained_nmse_db(ga.data() + i * per, gg[size_t(i)], ca.data() + i * per, cg[size_t(i)], per),
                run.clean_db)
          << "clean of example " << first + i;
  }
}

// `generate --device cuda` stopped mid-run (as by Ctrl-C: g_stop_requested, with a batch still in flight on the
// device) keeps its partial file, and --resume finishes it to the same bytes as one uninterrupted run.
TEST(GpuPipeline, GenerateInterruptedThenResumedWritesTheSameShard) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  // Stops the run when the third block is collected: two are written, a third rendered and dropped, a fourth
  // submitted and never collected.
  class StopAfter : public BlockBackend {
   public:
    StopAfter(std::unique_ptr<BlockBackend> inner, int blocks) : inner_(std::move(inner)), left_(blocks) {}
    int block_size() const override { return inner_->block_size(); }
    void submit(long long first, int count) override { inner_->submit(first, count); }
    BlockView collect() override {
      BlockView v = inner_->collect();
      if (--left_ == 0) g_stop_requested = true;
      return v;
    }
    std::string describe() const override { return inner_->describe(); }

   private:
    std::unique_ptr<BlockBackend> inner_;
    int left_;
  };
  Config cfg = pipeline_config();
  cfg.clip_s = 1.0;
  const int block = 6, rooms = 40;
  const bsim_tests::TempDir dir("gpu_resume");
  GenerateOptions opt;
  opt.rooms = rooms;
  opt.quiet = true;
  opt.out = (dir / "whole.h5").string();
  const auto cuda_backend = [block](const Renderer& r) { return cuda::make_cuda_backend(r, block); };
  generate_shard(cfg, opt, cuda_backend);
  opt.out = (dir / "resumed.h5").string();
  g_stop_requested = false;
  EXPECT_THROW(generate_shard(cfg, opt,
                              [&](const Renderer& r) { return std::make_unique<StopAfter>(cuda_backend(r), 3); }),
               Interrupted);
  g_stop_requested = false;
  ASSERT_FALSE(std::filesystem::exists(opt.out));
  ASSERT_TRUE(std::filesystem::exists(opt.out + ".partial"));
  opt.resume = true;
  generate_shard(cfg, opt, cuda_backend);
  const ShardReader whole((dir / "whole.h5").string()), resumed(opt.out);
  ASSERT_TRUE(resumed.info().complete);
  for (const char* col : {"clean", "augmented", "teacher", "scene/azimuth_deg", "scene/output_gain", "scene/n_images"}) {
    std::vector<float> a, b;
    whole.read(col, 0, rooms, a), resumed.read(col, 0, rooms, b);
    EXPECT_EQ(a, b) << col;
  }
}

// --- classic DoA estimators on the device ------------------------------------------------------------------
#include "doa/classic.h"
#include "kernels/doa_gpu.h"
#include "tests/doa_scenes.h"

// The GPU chooses the CPU's candidate for every method (frontal and full circle) on scenes of known direction,
// or, where the CPU's own scores are tied to float precision, a candidate the CPU scores as high. The first
// H200 run found such a tie: MUSIC at 0 deg on the full circle, where front (-1 deg) and back (-180 deg) reach
// the pseudo-spectrum's cap in the same bins; the device's float rounding (FMA contraction, its sincos) broke
// the tie the other way. A real disagreement scores far below the best (degrees away on a smooth score).
TEST(GpuClassicDoa, ChoosesAsTheCpu) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const HrirGrid grid = load_hrir_grid("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", 16000.0, 2.0, 5.0);
  FeatureConfig fc;
  const int T = 12000;
  const std::vector<double> azimuths{-75, -40, -10, 0, 25, 60, 85};
  const std::vector<float> audio = test::directional_scenes(grid, azimuths, T);
  int exact = 0, total = 0;
  for (bool full : {false, true}) {
    SCOPED_TRACE(full ? "full circle" : "frontal");
    const ClassicDoa cpu(grid, fc, full, 1.0);
    cuda::BatchClassicDoa gpu(cpu, 16, T);
    const auto choice = gpu.estimate(audio.data(), int(azimuths.size()));
    for (size_t b = 0; b < azimuths.size(); ++b) {
      const float* l = audio.data() + b * 2 * T;
      for (int m = 0; m < kClassicMethods; ++m) {
        const ClassicMethod method = ClassicMethod(m);
        const std::vector<double> score = cpu.scores(method, l, l + T, T);
        const size_t want = size_t(std::max_element(score.begin(), score.end()) - score.begin());
        const size_t got = size_t(choice[b][size_t(m)]);
        const double range = *std::max_element(score.begin(), score.end()) - *std::min_element(score.begin(), score.end());
        ++total, exact += got == want;
        EXPECT_GE(score[got], score[want] - 1e-4 * range)
            << classic_method_name(method) << " at " << azimuths[b] << " deg: the GPU chose "
            << cpu.candidates()[got] << " deg, the CPU " << cpu.candidates()[want] << " deg";
      }
    }
  }
  std::printf("GPU chose the CPU's exact candidate in %d of %d cases (the rest tied)\n", exact, total);
}
