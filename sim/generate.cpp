// Block-parallel generation: workers render block k+1 while block k is written to disk.
#include "sim/generate.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "io/error.h"
#include "io/progress.h"
#include "io/shard.h"
#include "sim/features.h"
#include "sim/parallel.h"
#include "sim/pipeline.h"

namespace bsim {

std::atomic<bool> g_stop_requested{false};

namespace {

std::vector<ColumnSpec> scene_columns() {
  using T = ColumnType;
  return {
      {"azimuth_deg", 1, T::f64, "source azimuth relative to the head: 0 front, +90 left (label)"},
      {"elevation_deg", 1, T::f64, "source elevation relative to the head (label)"},
      {"distance_m", 1, T::f64, "source distance from the head centre"},
      {"room_size_m", 3, T::f64, "room length, width, height"},
      {"t60_s", 1, T::f64, "requested reverberation time"},
      {"anechoic", 1, T::i8, "1: direct path only"},
      {"wall_reflection", 1, T::f64, "pressure reflection coefficient of every wall (0 when anechoic)"},
      {"listener_pos_m", 3, T::f64, "head centre in room coordinates"},
      {"head_yaw_deg", 1, T::f64, "head orientation, CCW from the room's +x axis"},
      {"source_pos_m", 3, T::f64, "source position in room coordinates"},
      {"hrtf_index", 1, T::i32, "index into /hrtf_files"},
      {"head_scale", 1, T::f64, "size factor the head was scaled by (hrtf.head_scales; 1 = as measured)"},
      {"speech_tilt_db_per_octave", 1, T::f64, "spectral tilt of the target speech (speech.tilt_db_per_octave)"},
      {"noise_type", 1, T::i8, "0 diffuse, 1 point, 2 babble"},
      {"snr_db", 1, T::f64, "reverberant speech to noise energy ratio, both ears summed"},
      {"babble_talkers", 1, T::i32, "talkers in babble noise (0 for other noise types)"},
      {"noise_pos_m", 3, T::f64, "point noise source position (NaN for other noise types)"},
      {"speech_index", 1, T::i32, "first utterance of the clip, index into /speech_files"},
      {"noise_index", 1, T::i32, "recorded noise file (index into /noise_files), -1 synthetic"},
      {"direct_delay_s", 1, T::f64, "propagation delay of the direct path"},
      {"transition_s", 1, T::f64, "early/late split used for this BRIR"},
      {"n_images", 1, T::i32, "image sources rendered with their own HRIR"},
      {"output_gain", 1, T::f64, "gain applied to all signals to set the mixture level"},
      {"example_index", 1, T::f64, "global example index: the example is a function of (seed, example_index)"},
  };
}

void append_columns(const Example& e, std::map<std::string, std::vector<double>>& c) {
  const Scene& s = e.scene;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto push3 = [&](const char* k, const Vec3& v) { c[k].insert(c[k].end(), {v.x, v.y, v.z}); };
  c["azimuth_deg"].push_back(s.azimuth_deg);
  c["elevation_deg"].push_back(s.elevation_deg);
  c["distance_m"].push_back(s.distance_m);
  push3("room_size_m", s.room.size_m);
  c["t60_s"].push_back(s.t60_s);
  c["anechoic"].push_back(s.anechoic ? 1 : 0);
  c["wall_reflection"].push_back(s.room.beta[0]);
  push3("listener_pos_m", s.listener_m);
  c["head_yaw_deg"].push_back(s.head_yaw_deg);
  push3("source_pos_m", s.source_m);
  c["hrtf_index"].push_back(s.hrtf_index);
  c["head_scale"].push_back(s.head_scale);
  c["speech_tilt_db_per_octave"].push_back(s.speech_tilt_db_per_octave);
  c["noise_type"].push_back(int(s.noise_type));
  c["snr_db"].push_back(s.snr_db);
  c["babble_talkers"].push_back(s.noise_type == NoiseType::babble ? s.babble_talkers : 0);
  push3("noise_pos_m", s.noise_type == NoiseType::point ? s.noise_source_m : Vec3{nan, nan, nan});
  c["speech_index"].push_back(e.speech_index);
  c["noise_index"].push_back(e.noise_index);
  c["direct_delay_s"].push_back(e.direct_delay_s);
  c["transition_s"].push_back(e.transition_s);
  c["n_images"].push_back(e.n_images);
  c["output_gain"].push_back(e.output_gain);
  c["example_index"].push_back(double(s.index));
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The CPU renderer as a backend: a block is rendered on all worker threads when it is submitted, straight
// into contiguous arrays (three sets: one being filled, one collected, one still being written).
class CpuBackend : public BlockBackend {
 public:
  explicit CpuBackend(const Renderer& r) : r_(r), threads_(resolve_threads(r.config().threads)) {}
  int block_size() const override { return std::max(r_.config().shard.chunk_examples, threads_); }
  std::string describe() const override { return "CPU, " + std::to_string(threads_) + " threads"; }
  void submit(long long first, int count) override {
    Slot& s = slots_[size_t(submitted_++ % 3)];
    const int T = r_.n_samples();
    const FeatureShape fs = teacher_shape(r_.config().features, T);
    const size_t audio = size_t(2) * T, feat = size_t(fs.n_features) * fs.n_frames;
    s.clean.assign(size_t(count) * audio, 0.0f);
    s.augmented.assign(size_t(count) * audio, 0.0f);
    s.teacher.assign(size_t(count) * feat, 0.0f);
    s.examples.assign(size_t(count), Example{});
    parallel_for(count, threads_, [&](int i) {
      if (g_stop_requested) return;
      Example e = r_.render(uint64_t(first + i));
      std::copy(e.clean.begin(), e.clean.end(), s.clean.begin() + long(i * audio));
      std::copy(e.augmented.begin(), e.augmented.end(), s.augmented.begin() + long(i * audio));
      std::copy(e.teacher.begin(), e.teacher.end(), s.teacher.begin() + long(i * feat));
      e.clean = e.augmented = e.reverberant = e.noise = e.teacher = {};
      s.examples[size_t(i)] = std::move(e);
    });
    s.count = count;
  }
  BlockView collect() override {
    Slot& s = slots_[size_t(collected_++ % 3)];
    BlockView v;
    v.count = s.count;
    v.clean = s.clean.data(), v.augmented = s.augmented.data(), v.teacher = s.teacher.data();
    v.examples = &s.examples;
    return v;
  }

 private:
  struct Slot {
    int count = 0;
    std::vector<float> clean, augmented, teacher;
    std::vector<Example> examples;
  };
  const Renderer& r_;
  int threads_;
  Slot slots_[3];
  long long submitted_ = 0, collected_ = 0;
};

}  // namespace

std::unique_ptr<BlockBackend> make_cpu_backend(const Renderer& renderer) {
  return std::make_unique<CpuBackend>(renderer);
}

std::string stored_config_yaml(const Config& cfg) {
  Config c = cfg;
  c.threads = 0;                                 // speed-only settings: never change the examples
  c.speech.cache_mb = SpeechConfig{}.cache_mb;
  return to_yaml(c);
}

void generate_shard(const Config& cfg, const GenerateOptions& opt,
                    const std::function<std::unique_ptr<BlockBackend>(const Renderer&)>& make_backend) {
  if (opt.rooms < 1) throw InputError("--rooms must be at least 1");
  if (opt.out.empty()) throw InputError("--out needs a file name, for example --out shards.h5");
  std::error_code ec;
  if (std::filesystem::exists(opt.out, ec) && !opt.force)
    throw InputError("output '" + opt.out + "' already exists: use --force to overwrite it");
  if (opt.resume && opt.force) throw InputError("--resume and --force contradict each other");

  const Renderer renderer(cfg);  // every input (SOFA, corpora, geometry) is checked before any file appears
  const int T = renderer.n_samples();
  const FeatureShape fshape = teacher_shape(cfg.features, T);
  ShardLayout layout;
  layout.n_examples = opt.rooms;
  layout.n_samples = T;
  layout.n_features = fshape.n_features;
  layout.n_frames = fshape.n_frames;
  layout.fs_hz = cfg.sample_rate_hz;
  layout.audio_dtype = cfg.shard.audio_dtype;
  layout.compression = cfg.shard.compression;
  layout.chunk_examples = cfg.shard.chunk_examples;
  layout.columns = scene_columns();
  if (opt.first_index < 0) throw InputError("--first-index must be >= 0");
  // The first index is part of what a resumed run must match, so it travels inside the stored config text.
  const std::string config_yaml = stored_config_yaml(cfg) + "# first_index: " + std::to_string(opt.first_index) + "\n";

  ShardWriter writer = opt.resume
                           ? ShardWriter::resume(opt.out, layout, config_yaml)
                           : ShardWriter(opt.out, layout,
                                         {{"config", config_yaml},
                                          {"bsim_version", BSIM_VERSION},
                                          {"created", now_iso8601()},
                                          {"teacher", cfg.features.teacher},
                                          {"noise_types", "0=diffuse,1=point,2=babble"},
                                          {"first_index", std::to_string(opt.first_index)},
                                          {"layout", "clean/augmented [N][ear: 0 left, 1 right][sample]; "
                                                     "teacher [N][feature][frame]"}},
                                         {{"hrtf_files", cfg.hrtf.sofa},
                                          {"speech_files", renderer.speech_files()},
                                          {"noise_files", renderer.noise_files()}});
  try {
    std::unique_ptr<BlockBackend> backend = make_backend ? make_backend(renderer) : make_cpu_backend(renderer);
    const int block = backend->block_size();
    Progress progress(opt.rooms, "rooms", opt.quiet, writer.n_done());
    progress.update(writer.n_done());
    // Block k+1 renders (CPU threads or GPU) while block k is written to disk by one writer thread.
    std::future<void> pending;
    auto write_async = [&writer](long long start, BlockView v) {
      return std::async(std::launch::async, [&writer, start, v] {
        ShardBlock b;
        b.start = start;
        b.count = v.count;
        b.clean = v.clean, b.augmented = v.augmented, b.teacher = v.teacher;
        b.clean_half = v.clean_half, b.augmented_half = v.augmented_half;
        for (const Example& e : *v.examples) append_columns(e, b.columns);
        writer.write(b);
      });
    };
    long long submitted = writer.n_done(), collected = writer.n_done();
    auto submit_next = [&] {
      const int count = int(std::min<long long>(block, opt.rooms - submitted));
      backend->submit(opt.first_index + submitted, count);
      submitted += count;
    };
    if (submitted < opt.rooms) submit_next();
    while (collected < opt.rooms && !g_stop_requested) {
      if (submitted < opt.rooms) submit_next();
      const BlockView v = backend->collect();
      if (g_stop_requested) break;
      if (pending.valid()) pending.get(), progress.update(writer.n_done());
      pending = write_async(collected, v);
      collected += v.count;
    }
    if (pending.valid()) pending.get(), progress.update(writer.n_done());
    progress.finish();
    if (g_stop_requested)
      throw Interrupted("interrupted after " + std::to_string(writer.n_done()) + "/" + std::to_string(opt.rooms) +
                        " examples; '" + writer.partial_path() + "' is kept: rerun the same command with --resume");
    writer.finish();
    const auto skipped = renderer.skipped_files();
    if (!skipped.empty()) {
      std::fprintf(stderr, "bsim: warning: skipped %zu unusable speech file(s):\n", skipped.size());
      for (const auto& s : skipped) std::fprintf(stderr, "  %s\n", s.c_str());
    }
    if (!opt.quiet) {
      std::string how = backend->describe();
      if (backend->device_seconds() > 0) {
        char busy[64];
        std::snprintf(busy, sizeof busy, ", GPU busy %.3f s", backend->device_seconds());
        how += busy;
      }
      std::fprintf(stderr, "wrote %lld examples to %s in %.1f s (%s)\n", opt.rooms, opt.out.c_str(),
                   progress.elapsed_s(), how.c_str());
    }
  } catch (const Interrupted&) {
    throw;
  } catch (...) {
    writer.abandon();  // no half-written file that could be mistaken for a dataset
    throw;
  }
}

}  // namespace bsim
