// io/: configuration, audio, corpora, SOFA loading and HDF5 shards.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/audio.h"
#include "io/config.h"
#include "io/corpus.h"
#include "io/error.h"
#include "io/hrtf.h"
#include "io/launch.h"
#include "io/shard.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace bsim;
using bsim_tests::TempDir;

namespace {


void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> shared_sofa_files() {
  std::vector<std::string> v;
  const fs::path dir = BSIM_SHARED_HRTF_DIR;
  if (!fs::is_directory(dir)) return v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".sofa") v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

const std::string kKemar = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa";

}  // namespace

TEST(Config, DefaultsAreValidAndRoundTripThroughYaml) {
  Config c;
  EXPECT_NO_THROW(validate(c));
  const TempDir dir("cfg_rt");
  write_text(dir / "c.yaml", to_yaml(c));
  Config d;
  d.seed = 99;
  apply_config_file(d, (dir / "c.yaml").string());
  EXPECT_EQ(to_yaml(c), to_yaml(d));
}

TEST(Config, FileThenOverrides) {
  const TempDir dir("cfg");
  write_text(dir / "c.yaml", "room:\n  t60_s: [0.3, 0.6]\nnoise:\n  type_weights: {diffuse: 1, babble: 0}\nseed: 7\n");
  Config c;
  apply_config_file(c, (dir / "c.yaml").string());
  EXPECT_DOUBLE_EQ(c.room.t60_s.lo, 0.3);
  EXPECT_DOUBLE_EQ(c.room.t60_s.hi, 0.6);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.noise.type_weights.size(), 2u);
  apply_override(c, "room.t60_s=0.45");
  EXPECT_DOUBLE_EQ(c.room.t60_s.lo, 0.45);
  EXPECT_DOUBLE_EQ(c.room.t60_s.hi, 0.45);
  apply_override(c, "hrtf.sofa=[a.sofa, b.sofa]");
  EXPECT_EQ(c.hrtf.sofa.size(), 2u);
}

TEST(Config, UnknownAndIllTypedKeysNameTheKey) {
  Config c;
  EXPECT_NE(error_of([&] { apply_override(c, "room.t61_s=0.3"); }).find("did you mean 'room.t60_s'"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(c, "room.t60_s=fast"); }).find("'room.t60_s': expected a number"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(c, "room.t60_s=[0.9, 0.2]"); }).find("min is larger than max"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(c, "features.n_fft=5.5"); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(c, "no_equals_sign"); }).find("expected key=value"), std::string::npos);
  const TempDir dir("cfg_bad");
  write_text(dir / "bad.yaml", "room:\n  lenght_m: 5\n");
  EXPECT_NE(error_of([&] { apply_config_file(c, (dir / "bad.yaml").string()); }).find("unknown config key 'room.lenght_m'"),
            std::string::npos);
  write_text(dir / "broken.yaml", "room: [unclosed\n");
  EXPECT_NE(error_of([&] { apply_config_file(c, (dir / "broken.yaml").string()); }).find("not valid YAML"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_config_file(c, (dir / "missing.yaml").string()); }).find("cannot be read"),
            std::string::npos);
}

TEST(Config, ValidateRejectsOutOfRangeValues) {
  Config c;
  c.features.teacher = "mfcc";
  EXPECT_NE(error_of([&] { validate(c); }).find("features.teacher"), std::string::npos);
  c = Config{};
  c.source.distance_m = {0.05, 1.0};
  EXPECT_NE(error_of([&] { validate(c); }).find("head radius"), std::string::npos);
  c = Config{};
  c.noise.type_weights = {{"diffuse", 0.0}};
  EXPECT_NE(error_of([&] { validate(c); }).find("at least one weight"), std::string::npos);
  c = Config{};  // the GPU's mixing holds one gain per talker in a table of kMaxBabbleTalkers
  c.noise.babble_talkers = {1, kMaxBabbleTalkers + 1};
  EXPECT_NE(error_of([&] { validate(c); }).find("noise.babble_talkers' must be within [1, 32]"), std::string::npos);
  c.noise.babble_talkers = {1, kMaxBabbleTalkers};
  validate(c);
  c = Config{};  // 0 would make every data-parallel wait time out at once
  c.train.dist_timeout_s = 0;
  EXPECT_NE(error_of([&] { validate(c); }).find("train.dist_timeout_s' must be within 1..604800"), std::string::npos);
}

TEST(Audio, ReadsOggResamplesAndRejectsBadFiles) {
  const auto files = scan_corpus({"/usr/share/games/fillets-ng/sound"}, {{"en"}, {}, {".ogg"}});
  ASSERT_GT(files.size(), 100u) << "the embedded corpus (fillets-ng-data) is missing: run scripts/setup.sh";
  const auto x22 = read_audio_mono(files[0], 22050.0);
  const auto x16 = read_audio_mono(files[0], 16000.0);
  ASSERT_GT(x22.size(), 1000u);
  EXPECT_NEAR(double(x16.size()), double(x22.size()) * 16000.0 / 22050.0, 2.0);

  // A 1 kHz sine resampled 48k -> 16k keeps its frequency and level (soxr passband).
  std::vector<float> sine(48000);
  for (size_t i = 0; i < sine.size(); ++i) sine[i] = float(std::sin(2 * M_PI * 1000.0 * i / 48000.0));
  const auto y = resample(sine, 48000.0, 16000.0);
  ASSERT_EQ(y.size(), 16000u);
  double err = 0;
  for (size_t i = 2000; i < 14000; ++i) err = std::max(err, std::fabs(y[i] - std::sin(2 * M_PI * 1000.0 * i / 16000.0)));
  EXPECT_LT(err, 1e-3);

  const TempDir dir("audio");
  write_text(dir / "garbage.wav", "this is not audio at all");
  EXPECT_NE(error_of([&] { read_audio_mono((dir / "garbage.wav").string(), 16000); }).find("cannot read audio file"),
            std::string::npos);
  const float* none = nullptr;
  write_wav((dir / "empty.wav").string(), {none}, 0, 16000);
  EXPECT_NE(error_of([&] { read_audio_mono((dir / "empty.wav").string(), 16000); }).find("holds no samples"),
            std::string::npos);
}

TEST(Corpus, FiltersByFolderNameAndIsSorted) {
  const TempDir dir("corpus");
  for (const char* p : {"a/nl/1.wav", "a/en/2.wav", "b/nl/3.WAV", "b/nl/4.txt", "c/5.ogg"}) {
    fs::create_directories((dir / p).parent_path());
    write_text(dir / p, "x");
  }
  auto nl = scan_corpus({dir.string()}, {{"nl"}, {}, {".wav", ".ogg"}});
  ASSERT_EQ(nl.size(), 2u);
  EXPECT_TRUE(nl[0] < nl[1]);
  EXPECT_EQ(scan_corpus({dir.string()}, {{}, {"en"}, {".wav", ".ogg"}}).size(), 3u);
  EXPECT_EQ(scan_corpus({(dir / "a" / "nl").string()}, {{"nl"}, {}, {".wav"}}).size(), 1u);  // root's own name counts
  EXPECT_NE(error_of([&] { scan_corpus({(dir / "nope").string()}, {}); }).find("does not exist"), std::string::npos);
}

TEST(Hrtf, EmbeddedKemarLoadsWithLeftEarFirst) {
  const HrirGrid g = load_hrir_grid(kKemar, 16000.0, 2.0, 5.0);
  EXPECT_EQ(g.n_az, 180);
  EXPECT_EQ(g.n_el, 37);
  EXPECT_EQ(g.ir.size(), size_t(g.n_az) * g.n_el * 2 * g.n_taps);
  auto energy = [&](int idx, int ear) {
    double e = 0;
    for (int i = 0; i < g.n_taps; ++i) e += double(g.at(idx, ear)[i]) * g.at(idx, ear)[i];
    return e;
  };
  const int left = g.index(90, 0), right = g.index(-90, 0);
  EXPECT_GT(energy(left, 0), 4 * energy(left, 1)) << "source at +90 deg must be louder in the left ear";
  EXPECT_GT(energy(right, 1), 4 * energy(right, 0));
}

TEST(Hrtf, EverySharedSetLoadsAndHasTheRightEarOrder) {
  const auto files = shared_sofa_files();
  if (files.empty()) GTEST_SKIP() << "no ../shared/hrtf folder beside the checkout";
  EXPECT_GE(files.size(), 5u);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    const HrirGrid g = load_hrir_grid(f, 16000.0, 5.0, 10.0);
    EXPECT_GT(g.n_measured, 100);
    EXPECT_GT(g.n_taps, 20);
    for (float v : g.ir) ASSERT_TRUE(std::isfinite(v));
    // Interaural onset order: a source on the left reaches the left ear first.
    auto onset = [&](int idx, int ear) {
      const float* h = g.at(idx, ear);
      float peak = 0;
      for (int i = 0; i < g.n_taps; ++i) peak = std::max(peak, std::fabs(h[i]));
      for (int i = 0; i < g.n_taps; ++i)
        if (std::fabs(h[i]) >= 0.3f * peak) return i;
      return g.n_taps;
    };
    const int idx = g.index(90, 0);
    EXPECT_LT(onset(idx, 0), onset(idx, 1));
  }
}

// Scaling a head by s: H_s(f) = H(s f) (acoustic similarity), so interaural delays grow by s and the magnitude
// response at f is the measured one at s f. Checked on the embedded KEMAR against direct DFTs of the measured IRs.
TEST(Hrtf, HeadSizeScalingScalesDelaysAndFrequencies) {
  const double fs = 16000.0;
  const HrirGrid g = load_hrir_grid(kKemar, fs, 5.0, 10.0);
  EXPECT_EQ(scale_head_size(g, 1.0).ir, g.ir);  // 1: the measured head, untouched
  // Interaural delay: the cross-correlation peak of the two ears (parabolic interpolation), source at +90 deg.
  auto itd = [](const HrirGrid& h, int idx) {
    const float *l = h.at(idx, 0), *r = h.at(idx, 1);
    auto xc = [&](int lag) {
      double a = 0;
      for (int i = 0; i < h.n_taps; ++i)
        if (i + lag >= 0 && i + lag < h.n_taps) a += double(l[i]) * r[i + lag];
      return a;
    };
    int best = 0;
    for (int lag = -40; lag <= 40; ++lag)
      if (xc(lag) > xc(best)) best = lag;
    const double ym = xc(best - 1), y0 = xc(best), yp = xc(best + 1);
    return best + 0.5 * (ym - yp) / (ym - 2 * y0 + yp);
  };
  auto response_db = [fs](const float* h, int n, double f) {  // |H(f)| in dB by a direct DFT
    double re = 0, im = 0;
    for (int i = 0; i < n; ++i) re += h[i] * std::cos(2 * M_PI * f * i / fs), im -= h[i] * std::sin(2 * M_PI * f * i / fs);
    return 10 * std::log10(re * re + im * im + 1e-30);
  };
  const int lateral = g.index(90, 0), front = g.index(30, 0);
  const double itd1 = itd(g, lateral);
  EXPECT_GT(itd1, 8.0) << "KEMAR at 90 deg: about 10 samples at 16 kHz";
  for (double s : {0.8, 0.9, 1.15, 1.3}) {
    SCOPED_TRACE(s);
    const HrirGrid h = scale_head_size(g, s);
    EXPECT_EQ(h.n_az, g.n_az);
    EXPECT_GE(h.n_taps, int(g.n_taps * s));
    EXPECT_NEAR(itd(h, lateral), s * itd1, 0.25);
    double worst = 0;
    for (int ear = 0; ear < 2; ++ear)
      for (double f = 200; f <= 0.8 * std::min(1.0, 1.0 / s) * fs / 2; f += 100)
        worst = std::max(worst, std::fabs(response_db(h.at(front, ear), h.n_taps, f) -
                                          response_db(g.at(front, ear), g.n_taps, s * f)));
    EXPECT_LT(worst, 0.5) << "dB between H_s(f) and H(s f)";
  }
  EXPECT_NE(error_of([&] { scale_head_size(g, 0.3); }).find("outside [0.5, 2]"), std::string::npos);
}

TEST(Hrtf, MissingCorruptAndTruncatedFilesGiveOneLineErrors) {
  const TempDir dir("sofa");
  EXPECT_NE(error_of([&] { load_hrir_grid((dir / "missing.sofa").string(), 16000, 2, 5); }).find("does not exist"),
            std::string::npos);
  write_text(dir / "garbage.sofa", std::string(4096, 'x'));
  EXPECT_NE(error_of([&] { load_hrir_grid((dir / "garbage.sofa").string(), 16000, 2, 5); }).find("cannot be loaded"),
            std::string::npos);
  {
    std::ifstream in(kKemar, std::ios::binary);
    std::string head(20000, '\0');
    in.read(head.data(), long(head.size()));
    std::ofstream(dir / "truncated.sofa", std::ios::binary) << head;
  }
  const std::string msg = error_of([&] { load_hrir_grid((dir / "truncated.sofa").string(), 16000, 2, 5); });
  EXPECT_NE(msg.find("truncated.sofa"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(Shard, HalfConversionIsExactWhereRepresentable) {
  for (float f : {0.0f, 1.0f, -2.5f, 0.000061035156f, 65504.0f, 1.0f / 1024.0f, 5.9604645e-8f})
    EXPECT_EQ(half_to_float(float_to_half(f)), f) << f;
  EXPECT_TRUE(std::isinf(half_to_float(float_to_half(1e6f))));
  for (int i = 0; i < 1000; ++i) {
    const float f = float(std::sin(i * 0.37) * 0.9);
    EXPECT_NEAR(half_to_float(float_to_half(f)), f, std::fabs(f) * 1.0 / 2048 + 1e-7);
  }
}

TEST(Shard, WritesResumesAndFinishes) {
  const TempDir dir("shard");
  const std::string out = (dir / "s.h5").string();
  ShardLayout L;
  L.n_examples = 5;
  L.n_samples = 8;
  L.n_features = 3;
  L.n_frames = 2;
  L.fs_hz = 16000;
  L.chunk_examples = 2;
  L.columns = {{"azimuth_deg", 1, ColumnType::f64, "az"}, {"pos", 3, ColumnType::f64, "p"}};
  auto block = [&](long long start, int count, std::vector<float>& audio, std::vector<float>& feat) {
    audio.assign(size_t(count) * 2 * 8, 0.0f);
    feat.assign(size_t(count) * 6, 0.0f);
    for (size_t i = 0; i < audio.size(); ++i) audio[i] = float(start) + float(i) / 1024.0f;
    ShardBlock b;
    b.start = start;
    b.count = count;
    b.clean = b.augmented = audio.data();
    b.teacher = feat.data();
    for (int i = 0; i < count; ++i) {
      b.columns["azimuth_deg"].push_back(double(start + i));
      b.columns["pos"].insert(b.columns["pos"].end(), {1.0, 2.0, 3.0});
    }
    return b;
  };
  std::vector<float> a, f;
  {
    ShardWriter w(out, L, {{"config", "cfg-text"}}, {{"speech_files", {"x.ogg"}}});
    w.write(block(0, 2, a, f));
  }  // dropped without finish(): an interrupted run
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(out + ".partial"));
  EXPECT_NE(error_of([&] { ShardWriter::resume(out, L, "other-config"); }).find("another configuration"), std::string::npos);
  ShardWriter w = ShardWriter::resume(out, L, "cfg-text");
  EXPECT_EQ(w.n_done(), 2);
  w.write(block(2, 3, a, f));
  w.finish();
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  const ShardInfo info = read_shard_info(out);
  EXPECT_TRUE(info.complete);
  EXPECT_EQ(info.n_done, 5);
  EXPECT_EQ(info.audio_dtype, "float16");
  ASSERT_EQ(info.columns.at("azimuth_deg").size(), 5u);
  EXPECT_EQ(info.columns.at("azimuth_deg")[4], 4.0);
  EXPECT_EQ(info.columns.count("pos"), 0u);  // only width-1 columns are summarised
  write_text(dir / "not.h5", "nope");
  EXPECT_NE(error_of([&] { read_shard_info((dir / "not.h5").string()); }).find("not an HDF5 file"), std::string::npos);
}

// A launch as torchrun describes it, else as SLURM does; a variable holding something else is named.
TEST(Launch, TorchrunsVariablesThenSlurmsAndABadOneIsNamed) {
  using Env = std::map<std::string, std::string>;
  const auto from = [](const Env& e) {
    return launch_from_env([&](const char* v) { return e.count(v) ? e.at(v).c_str() : nullptr; });
  };
  const Launch none = from({});
  EXPECT_EQ(none.rank, -1);
  EXPECT_EQ(none.world, 1);
  EXPECT_EQ(none.local_ranks, 1);
  EXPECT_TRUE(none.master_addr.empty());
  const Launch t = from({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                         {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}, {"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}});
  EXPECT_EQ(t.rank, 5);
  EXPECT_EQ(t.world, 8);
  EXPECT_EQ(t.local_ranks, 4);
  EXPECT_EQ(t.rank_var, "RANK");
  EXPECT_EQ(t.master_addr, "node0");
  EXPECT_EQ(t.master_port, 29500);
  const Launch s = from({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}, {"SLURM_LOCALID", "0"}});
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.world, 3);
  EXPECT_EQ(s.rank_var, "SLURM_PROCID");
  for (const auto& [bad, needle] : std::vector<std::pair<Env, std::string>>{
           {{{"RANK", "one"}}, "RANK='one' is not a rank number"},
           {{{"RANK", "0"}, {"WORLD_SIZE", "-2"}}, "WORLD_SIZE='-2'"},
           {{{"MASTER_PORT", "99999"}}, "MASTER_PORT='99999' is not a port number"},
           {{{"LOCAL_WORLD_SIZE", "x"}}, "LOCAL_WORLD_SIZE='x'"}}) {
    try {
      from(bad);
      FAIL() << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}
