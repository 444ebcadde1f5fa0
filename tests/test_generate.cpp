// The CPU generation path's threads: the render workers (parallel_for over a block), the renderer's shared
// speech cache, and the shard writer's thread, which writes block k while block k + 1 renders. Built twice: as
// it is, and on bsim_sim_tsan under ThreadSanitizer (ctest cpu_generate_under_tsan), where a data race in any of
// them stops the test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io/config.h"
#include "io/shard.h"
#include "sim/generate.h"

using namespace bsim;

TEST(Generate, ThreadsAndBlocksLeaveTheShardUnchanged) {
  Config cfg;  // the embedded defaults: MIT KEMAR, fillets-ng speech
  cfg.clip_s = 0.5;
  cfg.shard.chunk_examples = 3;  // blocks of 3: four of them, so that writing and rendering overlap
  const std::string dir = ::testing::TempDir();
  GenerateOptions opt;
  opt.rooms = 11;
  opt.quiet = true;
  opt.force = true;
  cfg.threads = 1;
  opt.out = dir + "/one_thread.h5";
  generate_shard(cfg, opt);
  cfg.threads = 3;
  opt.out = dir + "/three_threads.h5";
  generate_shard(cfg, opt);
  const ShardReader one(dir + "/one_thread.h5"), three(dir + "/three_threads.h5");
  ASSERT_TRUE(three.info().complete);
  ASSERT_EQ(three.info().n_done, opt.rooms);
  for (const char* dataset : {"clean", "augmented", "teacher", "scene/azimuth_deg", "scene/snr_db", "scene/speech_index"}) {
    std::vector<float> a, b;
    one.read(dataset, 0, int(opt.rooms), a), three.read(dataset, 0, int(opt.rooms), b);
    ASSERT_FALSE(a.empty()) << dataset;
    EXPECT_EQ(a, b) << dataset;
  }
  const std::vector<double> indices = three.example_indices(0, int(opt.rooms));
  for (int i = 0; i < int(opt.rooms); ++i) EXPECT_EQ(indices[size_t(i)], double(i));
}
