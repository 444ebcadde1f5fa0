// btrain's CUDA on-the-fly source (train/device_source.cpp) on the emulated CUDA backend: the ring of device
// slots hands out batch k, k+1, ... in order with the CPU source's labels, never overwrites a batch before the
// trainer releases it (nor, on the device, before the trainer's stream has passed the release), and wraps example
// indices at the labelled pool; the ranks of data-parallel training each take their share of every batch, from
// this source, the CPU's and a shard's. No libtorch: the trainer's side (wait, read, release) is played here with
// runtime calls.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "io/config.h"
#include "io/error.h"
#include "sim/generate.h"
#include "sim/pipeline.h"
#include "tests/temp_dir.h"
#include "train/batch_source.h"

using namespace bsim;

namespace {

Config small_config() {
  Config cfg;
  cfg.clip_s = 1.0;
  cfg.seed = 5;
  cfg.train.batch_size = 3;
  cfg.train.prefetch_batches = 1;  // two device slots
  return cfg;
}

std::vector<float> read_augmented(const Batch& b) {
  b.device->wait(nullptr);
  std::vector<float> x(size_t(b.size) * 2 * b.n_samples);
  EXPECT_EQ(cudaMemcpy(x.data(), b.device->augmented, x.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return x;
}

}  // namespace

TEST(DeviceSource, BatchesInOrderWithTheCpuSourcesLabels) {
  const Config cfg = small_config();
  auto gpu = make_device_source(cfg, 4, 0);
  auto cpu = make_on_the_fly_source(cfg, 4, 0);
  for (int k = 0; k < 4; ++k) {
    const Batch g = gpu->next(), c = cpu->next();
    ASSERT_TRUE(g.device);
    EXPECT_EQ(g.index, 4 + k);
    EXPECT_EQ(g.example_index, c.example_index);
    EXPECT_EQ(g.azimuth_deg, c.azimuth_deg);
    EXPECT_EQ(g.snr_db, c.snr_db);
    EXPECT_EQ(g.t60_s, c.t60_s);
    EXPECT_EQ(g.noise_type, c.noise_type);
    ASSERT_EQ(g.n_samples, c.n_samples);
    ASSERT_EQ(g.n_features, c.n_features);
    ASSERT_EQ(g.n_frames, c.n_frames);
    // The mixture's level: -26 dBFS RMS per example on both sides (unless the peak limit applies to either).
    const std::vector<float> a = read_augmented(g);
    const size_t per = size_t(2) * g.n_samples;
    for (int i = 0; i < g.size; ++i) {
      double eg = 0, ec = 0, pg = 0, pc = 0;
      for (size_t t = 0; t < per; ++t) {
        const float x = a[i * per + t], y = c.augmented[i * per + t];
        eg += double(x) * x, ec += double(y) * y;
        pg = std::max(pg, double(std::fabs(x))), pc = std::max(pc, double(std::fabs(y)));
      }
      if (pg < 0.98 && pc < 0.98) EXPECT_NEAR(std::sqrt(eg / per), std::sqrt(ec / per), 1e-4) << "example " << i;
    }
    g.device->release(nullptr);
  }
}

// Two slots: while the trainer holds batches 0 and 1, the producer may not touch either; releasing batch 0
// lets batch 2 into its slot, and batch 1 is still intact afterwards.
TEST(DeviceSource, AHeldBatchIsNeverOverwritten) {
  const Config cfg = small_config();
  auto gpu = make_device_source(cfg, 0, 0);
  const Batch b0 = gpu->next(), b1 = gpu->next();
  const std::vector<float> a0 = read_augmented(b0), a1 = read_augmented(b1);
  EXPECT_NE(a0, a1);
  // Time for a producer that did not wait for the releases to render a batch or two (~0.7 s each here)
  // into the held slots.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(read_augmented(b0), a0) << "batch 0 changed while the trainer held it";
  EXPECT_EQ(read_augmented(b1), a1) << "batch 1 changed while the trainer held it";
  b0.device->release(nullptr);
  const Batch b2 = gpu->next();  // slot 0 again
  EXPECT_EQ(b2.device->augmented, b0.device->augmented);
  EXPECT_EQ(b2.index, 2);
  EXPECT_NE(read_augmented(b2), a0);
  EXPECT_EQ(read_augmented(b1), a1) << "batch 1 changed while the trainer held it";
  b1.device->release(nullptr);
  b2.device->release(nullptr);
}

// The trainer reads a batch asynchronously on its own stream (torch's kernels) and releases it on that stream
// while those reads may still be queued: the slot must not be overwritten before the stream gets there. On the
// emulated runtime the trainer's stream runs only when forced (kernels/emulated_runtime/cuda_runtime.h), so
// without the pipeline's wait for the release the next batch in the slot lands first, in every run.
TEST(DeviceSource, ASlotReleasedOnABusyStreamIsKeptUntilThatStreamGetsThere) {
  const Config cfg = small_config();
  auto gpu = make_device_source(cfg, 0, 0);
  cudaStream_t trainer = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&trainer, cudaStreamNonBlocking), cudaSuccess);
  const Batch b0 = gpu->next();
  const std::vector<float> a0 = read_augmented(b0);
  float* copy = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&copy), a0.size() * sizeof(float)), cudaSuccess);
  b0.device->wait(trainer);
  ASSERT_EQ(cudaMemcpyAsync(copy, b0.device->augmented, a0.size() * sizeof(float), cudaMemcpyDeviceToDevice, trainer),
            cudaSuccess);
  b0.device->release(trainer);
  const Batch b1 = gpu->next(), b2 = gpu->next();  // b2 in b0's slot
  ASSERT_EQ(b2.device->augmented, b0.device->augmented);
  EXPECT_NE(read_augmented(b2), a0);
  ASSERT_EQ(cudaStreamSynchronize(trainer), cudaSuccess);
  std::vector<float> got(a0.size());
  ASSERT_EQ(cudaMemcpy(got.data(), copy, got.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(got, a0) << "the trainer's read of batch 0 saw the batch rendered into its slot after the release";
  b1.device->release(nullptr);
  b2.device->release(nullptr);
  cudaFree(copy);
  cudaStreamDestroy(trainer);
}

// Fine-tuning on a labelled pool of 5 examples: batch k holds examples (3k + i) mod 5.
TEST(DeviceSource, ExampleIndicesWrapAtThePool) {
  const Config cfg = small_config();
  auto gpu = make_device_source(cfg, 0, 5);
  for (int k = 0; k < 3; ++k) {
    const Batch b = gpu->next();
    for (int i = 0; i < b.size; ++i) EXPECT_EQ(b.example_index[size_t(i)], double((3 * k + i) % 5));
    b.device->release(nullptr);
  }
}

// Data-parallel shares: of every batch of 4, rank r of 2 takes examples 2r, 2r+1, with the one-rank source's
// labels and audio (the CPU's and the shard's, streamed or pre-loaded, bit for bit; the device's too: every example
// is rendered on its own), also where example indices wrap at a labelled pool.
TEST(BatchShare, RanksTakeTheirPartOfEveryBatchFromEverySource) {
  Config cfg = small_config();
  cfg.train.batch_size = 4;
  bsim_tests::TempDir dir("batch_share");
  GenerateOptions gen;
  gen.out = (dir / "s.h5").string();
  gen.rooms = 12;
  gen.quiet = true;
  generate_shard(cfg, gen);
  using Make = std::function<std::unique_ptr<BatchSource>(BatchShare)>;
  const std::vector<std::pair<std::string, Make>> sources{
      {"cpu", [&](BatchShare s) { return make_on_the_fly_source(cfg, 2, 7, s); }},
      {"shard", [&](BatchShare s) { return make_shard_source(cfg, gen.out, 2, true, false, s); }},
      {"preloaded shard", [&](BatchShare s) { return make_shard_source(cfg, gen.out, 2, true, true, s); }},
      {"device", [&](BatchShare s) { return make_device_source(cfg, 2, 7, s); }}};
  for (const auto& [name, make] : sources) {
    SCOPED_TRACE(name);
    auto whole = make({0, 1}), first = make({0, 2}), second = make({1, 2});
    for (int k = 0; k < 3; ++k) {
      const Batch w = whole->next(), a = first->next(), b = second->next();
      ASSERT_EQ(w.size, 4);
      ASSERT_EQ(a.size, 2);
      ASSERT_EQ(b.size, 2);
      EXPECT_EQ(a.index, w.index);
      EXPECT_EQ(b.index, w.index);
      std::vector<double> joined = a.example_index;
      joined.insert(joined.end(), b.example_index.begin(), b.example_index.end());
      EXPECT_EQ(joined, w.example_index) << "batch " << k;
      if (name.find("shard") == std::string::npos)  // on the fly: batch k is examples 4k .. 4k+3 modulo the pool of 7
        for (int i = 0; i < 4; ++i) EXPECT_EQ(w.example_index[size_t(i)], double((4 * (2 + k) + i) % 7));
      std::vector<float> az = a.azimuth_deg;
      az.insert(az.end(), b.azimuth_deg.begin(), b.azimuth_deg.end());
      EXPECT_EQ(az, w.azimuth_deg);
      const auto audio = [](const Batch& x) { return x.device ? read_augmented(x) : x.augmented; };
      std::vector<float> both = audio(a), all = audio(w);
      const std::vector<float> second_half = audio(b);
      both.insert(both.end(), second_half.begin(), second_half.end());
      EXPECT_EQ(both, all) << "batch " << k;
      if (name != "device") {
        std::vector<float> teacher = a.teacher;
        teacher.insert(teacher.end(), b.teacher.begin(), b.teacher.end());
        EXPECT_EQ(teacher, w.teacher) << "batch " << k;
      }
      for (const Batch* x : {&w, &a, &b})
        if (x->device) x->device->release(nullptr);
    }
  }
  // Pre-loaded rows are the file's: rank 1's batches from memory equal its streamed ones.
  auto streamed = make_shard_source(cfg, gen.out, 0, true, false, {1, 2});
  auto loaded = make_shard_source(cfg, gen.out, 0, true, true, {1, 2});
  for (int k = 0; k < 4; ++k) {  // past the 3 blocks of an epoch
    const Batch x = streamed->next(), y = loaded->next();
    EXPECT_EQ(x.example_index, y.example_index) << "batch " << k;
    EXPECT_EQ(x.augmented, y.augmented) << "batch " << k;
    EXPECT_EQ(x.teacher, y.teacher) << "batch " << k;
    EXPECT_EQ(x.t60_s, y.t60_s) << "batch " << k;
  }
  // Each rank holds its own rows of the shard in memory: the 12 examples make 3 blocks of 4, 6 rows per rank.
  EXPECT_NE(make_shard_source(cfg, gen.out, 0, true, true, {1, 2})->describe().find("pre-loaded into memory: this rank's 6)"),
            std::string::npos);
  try {
    make_on_the_fly_source(cfg, 0, 0, {0, 3});
    FAIL() << "a batch of 4 was split over 3 ranks";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size=4 does not split over 3 ranks"), std::string::npos) << e.what();
  }
}
