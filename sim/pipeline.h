// The CPU rendering pipeline: scene -> BRIRs -> speech convolution -> noise at SNR -> teacher features.
// This is the reference the CUDA backend is tested against; render() is const and thread-safe.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/config.h"
#include "io/hrtf.h"
#include "sim/brir.h"
#include "sim/scene.h"

namespace bsim {

constexpr double kMixtureRms = 0.05;  // -26 dBFS: the level the output gain sets the mixture to
constexpr double kSpeechRms = 0.05;   // dry speech level before rendering
constexpr double kMaxPeak = 0.99;     // no sample of the mixture or the clean rendering above this

struct Example {
  Scene scene;
  int n_samples = 0;
  std::vector<float> clean;        // [ear][T]: speech through the direct-path HRIR only
  std::vector<float> reverberant;  // [ear][T]: speech through the full BRIR
  std::vector<float> noise;        // [ear][T]: noise scaled to the scene's SNR
  std::vector<float> augmented;    // [ear][T]: reverberant + noise (the student's input)
  std::vector<float> teacher;      // [feature][frame] from `clean`
  int speech_index = -1;           // first utterance used (index into Renderer::speech_files())
  int noise_index = -1;            // recorded noise file for point noise, -1 = synthetic
  int n_images = 0;
  double transition_s = 0, direct_delay_s = 0;
  double output_gain = 1;          // applied to all four signals to bring the mixture to -26 dBFS RMS
};

// The last step of rendering an example, from its noise at the ears before scaling: the noise scaled so that the
// reverberant speech is snr_db above it (energies summed over both ears and the whole clip), the mixture, then one
// gain for all four signals (mixture at kMixtureRms RMS, no sample of mixture or clean above kMaxPeak), kept in
// ex.output_gain. The GPU's mixing kernels (kernels/pipeline_kernels.cuh) compute the same, in the same order.
void mix_at_snr(double snr_db, Example& ex);

// Where a dry (unrendered) signal comes from: pieces of corpus files laid into a clip of n samples, then
// scaled by `gain`. The CPU assembles it from the utterance cache; the GPU gathers it from device memory, so
// both render the same signal from one plan.
struct ClipSegment {
  int file = -1;        // index into speech_files() (or noise_files() for recorded point noise)
  long long offset = 0; // first sample taken from the file
  int take = 0;         // samples taken
  int pos = 0;          // where they land in the clip
};
struct ClipPlan {
  bool from_noise_files = false;
  std::vector<ClipSegment> segments;
  double gain = 1.0;
};

// A noise emitter in the room (point noise, or one babble talker): its position and dry signal; a synthetic
// point noise has no segments and is drawn from Stream::noise.
struct NoiseEmitter {
  Vec3 position_m;
  bool synthetic = false;
  ClipPlan clip;
  bool equal_level = false;    // babble: each talker's rendering is scaled to unit energy before summing
  uint64_t tail_substream = 0; // the emitter's BRIR tail uses Rng(seed, index, Stream::tail, substream)
};

// Every random draw of one example except the noise samples and the late-tail noise, which come from
// counter streams (Stream::noise, Stream::tail) that the CPU and the GPU each draw in their own way.
struct ExamplePlan {
  Scene scene;
  ClipPlan speech;
  int speech_index = -1;
  int noise_index = -1;
  std::vector<NoiseEmitter> emitters;  // none for diffuse noise
};

// Everything loaded once and shared by all threads: HRIR grids and their diffuse fields, corpora.
class Renderer {
 public:
  explicit Renderer(const Config& cfg);  // loads SOFA files, scans corpora; throws InputError on bad input
  Example render(uint64_t index) const;
  ExamplePlan plan(uint64_t index) const;
  // The noise of example `index` (2 x n_samples, ear-major) before mix_at_snr scales it. Draw 0 is render()'s;
  // draw d > 0 takes the random parts (synthetic noise, each emitter's late tail) from other substreams: the
  // spread by which a renderer drawing them in its own way (the GPU's counter streams) is judged.
  std::vector<float> render_noise(const ExamplePlan& plan, uint64_t index, uint64_t draw) const;
  // The dry signal of a plan (n samples).
  std::vector<float> assemble(const ClipPlan& clip, int n) const;
  // Recorded noise file `idx` at the simulation rate, kept in the same cache as the utterances.
  std::shared_ptr<const std::vector<float>> noise_file(int idx) const;
  const Config& config() const { return cfg_; }
  // One grid per (SOFA set, head scale), set-major: grids()[grid_index(scene)] is the scene's head.
  const std::vector<HrirGrid>& grids() const { return grids_; }
  int grid_index(const Scene& s) const { return hrir_grid_index(cfg_, s); }
  const std::vector<DiffuseField>& diffuse_fields() const { return diffuse_; }
  const std::vector<std::string>& speech_files() const { return speech_; }
  const std::vector<std::string>& noise_files() const { return noise_files_; }
  int n_samples() const { return n_samples_; }

  // Plans a clip of n samples from utterances of the speech corpus (RMS-normalised: the gain is computed from
  // the assembled clip, which is also returned when `assembled` is given).
  ClipPlan plan_speech_clip(Rng& rng, int n, int* first_index, std::vector<float>* assembled = nullptr) const;
  BrirRequest brir_request(const Scene& s, const Vec3& source) const;

  // Decoded, resampled utterance `idx` of the speech corpus. Decoding an OGG and resampling it costs more
  // than rendering a BRIR, so utterances are kept after first use until speech.cache_mb is reached.
  // An unreadable or empty file returns nullptr when speech.skip_unreadable is on (it is remembered and
  // reported by skipped_files()), and throws InputError otherwise.
  std::shared_ptr<const std::vector<float>> utterance(int idx) const;
  std::vector<std::string> skipped_files() const;

 private:
  // Decoded audio by key (speech file i -> i, noise file i -> -(i + 1)), cached up to speech.cache_mb; an
  // unreadable file returns nullptr when may_skip (remembered), else throws InputError.
  std::shared_ptr<const std::vector<float>> cached_audio(int key, const std::string& path, bool may_skip) const;
  // Sum of squares of utterance idx (x: its samples), from the cache when it holds it.
  double utterance_energy(int idx, const std::vector<float>& x) const;
  Config cfg_;
  int n_samples_ = 0;
  std::vector<HrirGrid> grids_;
  std::vector<DiffuseField> diffuse_;
  std::vector<std::string> speech_, noise_files_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<int, std::shared_ptr<const std::vector<float>>> cache_;
  mutable std::unordered_map<int, double> cached_energy_;  // sum of squares of each cached file (planning reads it)
  mutable size_t cache_bytes_ = 0;
  mutable std::unordered_map<int, std::string> unusable_;  // file index -> reason
};

double noise_color_exponent(const std::string& color);

}  // namespace bsim
