// CPU example rendering.
#include "sim/pipeline.h"

#include <algorithm>
#include <cmath>

#include "io/audio.h"
#include "io/corpus.h"
#include "io/error.h"
#include "sim/features.h"
#include "sim/fft.h"

namespace bsim {
namespace {
constexpr int kMaxUnusableDraws = 50;  // consecutive unusable draws before the corpus is declared broken

// Sum of squares in double, eight partial sums (a fixed order, so the same on every machine): one running sum
// is a chain of dependent adds, and planning sums several seconds of speech per clip.
double energy(const float* x, size_t n) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) part[k] += double(x[i + size_t(k)]) * x[i + size_t(k)];
  for (; i < n; ++i) part[0] += double(x[i]) * x[i];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

// Renders a mono signal through a BRIR into out[ear][T] (accumulating when add is true).
void render_through(const Brir& b, const std::vector<float>& x, int T, std::vector<float>& out, bool add) {
  std::vector<float> y0(static_cast<size_t>(T)), y1(static_cast<size_t>(T));
  convolve_many(x.data(), int(x.size()), {b.response[0].data(), b.response[1].data()}, b.length, T,
                {y0.data(), y1.data()});
  for (int i = 0; i < T; ++i) {
    out[size_t(i)] = (add ? out[size_t(i)] : 0.0f) + y0[size_t(i)];
    out[size_t(T + i)] = (add ? out[size_t(T + i)] : 0.0f) + y1[size_t(i)];
  }
}
}  // namespace

double noise_color_exponent(const std::string& color) {
  if (color == "white") return 0.0;
  if (color == "pink") return 1.0;
  if (color == "brown") return 2.0;
  throw InputError("noise.color must be white, pink or brown, not '" + color + "'");
}

Renderer::Renderer(const Config& cfg) : cfg_(cfg) {
  validate(cfg_);
  check_geometry(cfg_);
  n_samples_ = int(std::lround(cfg_.clip_s * cfg_.sample_rate_hz));
  for (const auto& path : cfg_.hrtf.sofa) {
    const HrirGrid measured = load_hrir_grid(path, cfg_.sample_rate_hz, cfg_.hrtf.grid_azimuth_step_deg,
                                             cfg_.hrtf.grid_elevation_step_deg);
    for (double scale : cfg_.hrtf.head_scales) {  // grid_index(): set-major, then scale
      grids_.push_back(scale_head_size(measured, scale));
      diffuse_.push_back(compute_diffuse_field(grids_.back()));
    }
  }
  speech_ = scan_corpus(cfg_.speech.roots, {cfg_.speech.include_dirs, cfg_.speech.exclude_dirs, cfg_.speech.extensions});
  if (speech_.empty())
    throw InputError("no speech files under speech.roots with include_dirs/exclude_dirs as configured "
                     "(the default corpus needs: apt-get install fillets-ng-data-nl fillets-ng-data-cs)");
  if (!cfg_.noise.roots.empty()) {
    noise_files_ = scan_corpus(cfg_.noise.roots, {{}, {}, cfg_.speech.extensions});
    if (noise_files_.empty()) throw InputError("no audio files under noise.roots");
  }
}

std::shared_ptr<const std::vector<float>> Renderer::cached_audio(int key, const std::string& path, bool may_skip) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    if (unusable_.count(key)) return nullptr;
  }
  std::shared_ptr<const std::vector<float>> x;
  try {
    x = std::make_shared<const std::vector<float>>(read_audio_mono(path, cfg_.sample_rate_hz));
  } catch (const InputError& e) {
    if (!may_skip) throw;
    std::lock_guard<std::mutex> lock(cache_mutex_);
    unusable_.emplace(key, e.what());
    return nullptr;
  }
  const double e = energy(x->data(), x->size());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  const size_t bytes = x->size() * sizeof(float);
  if (cache_bytes_ + bytes <= size_t(cfg_.speech.cache_mb) * 1024 * 1024 && cache_.emplace(key, x).second) {
    cached_energy_.emplace(key, e);
    cache_bytes_ += bytes;
  }
  return x;
}

double Renderer::utterance_energy(int idx, const std::vector<float>& x) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cached_energy_.find(idx);
    if (it != cached_energy_.end()) return it->second;
  }
  return energy(x.data(), x.size());
}

std::shared_ptr<const std::vector<float>> Renderer::utterance(int idx) const {
  return cached_audio(idx, speech_[size_t(idx)], cfg_.speech.skip_unreadable);
}

std::shared_ptr<const std::vector<float>> Renderer::noise_file(int idx) const {
  return cached_audio(-idx - 1, noise_files_.at(size_t(idx)), false);
}

std::vector<std::string> Renderer::skipped_files() const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  std::vector<std::string> v;
  for (const auto& kv : unusable_) v.push_back(kv.second);
  std::sort(v.begin(), v.end());
  return v;
}

ClipPlan Renderer::plan_speech_clip(Rng& rng, int n, int* first_index, std::vector<float>* assembled) const {
  ClipPlan plan;
  double clip_energy = 0;  // of the assembled clip: its segments (the pauses between them are zeros)
  const double min_rms = std::pow(10.0, cfg_.speech.min_rms_dbfs / 20.0);
  int pos = 0, silent = 0;
  bool first = true;
  while (pos < n) {
    const int idx = rng.uniform_int(0, int(speech_.size()) - 1);
    const auto utt = utterance(idx);
    if (!utt || std::sqrt(utterance_energy(idx, *utt) / double(utt->size())) < min_rms) {
      if (++silent > kMaxUnusableDraws) {
        std::string why = "silent (below speech.min_rms_dbfs)";
        if (!utt) {
          std::lock_guard<std::mutex> lock(cache_mutex_);
          why = unusable_.at(idx);
        }
        throw InputError("speech corpus: " + std::to_string(silent) + " drawn utterances in a row are unusable; last: '" +
                         speech_[size_t(idx)] + "': " + why);
      }
      continue;
    }
    silent = 0;
    const std::vector<float>& x = *utt;
    size_t offset = 0;
    if (first && x.size() > size_t(n)) offset = size_t(rng.uniform_int(0, int(x.size() - size_t(n))));
    if (first && first_index) *first_index = idx;
    first = false;
    const size_t take = std::min(x.size() - offset, size_t(n - pos));
    clip_energy += energy(x.data() + offset, take);
    plan.segments.push_back({idx, (long long)offset, int(take), pos});
    pos += int(take) + int(rng.uniform(0.1, 0.3) * cfg_.sample_rate_hz);  // short pause between utterances
  }
  const double rms = std::sqrt(clip_energy / double(n));
  plan.gain = kSpeechRms / rms;
  if (assembled) *assembled = assemble(plan, n);
  return plan;
}

std::vector<float> Renderer::assemble(const ClipPlan& clip, int n) const {
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  for (const ClipSegment& sg : clip.segments) {
    const auto audio = clip.from_noise_files ? noise_file(sg.file) : utterance(sg.file);
    if (!audio) throw RuntimeError("speech file '" + speech_[size_t(sg.file)] + "' became unreadable");
    const float* src = audio->data();
    for (int i = 0; i < sg.take; ++i) out[size_t(sg.pos + i)] = float(src[sg.offset + i] * clip.gain);
  }
  return out;
}

ExamplePlan Renderer::plan(uint64_t index) const {
  ExamplePlan p;
  p.scene = sample_scene(cfg_, int(cfg_.hrtf.sofa.size()), index);
  const Scene& s = p.scene;
  const int T = n_samples_;
  Rng speech_rng(cfg_.seed, index, Stream::speech);
  p.speech = plan_speech_clip(speech_rng, T, &p.speech_index);
  if (s.noise_type == NoiseType::point) {
    NoiseEmitter e;
    e.position_m = s.noise_source_m;
    e.tail_substream = 1;
    if (!noise_files_.empty()) {
      Rng noise_rng(cfg_.seed, index, Stream::noise);
      p.noise_index = noise_rng.uniform_int(0, int(noise_files_.size()) - 1);
      const long long len = (long long)noise_file(p.noise_index)->size();
      if (len < 1) throw InputError("noise file '" + noise_files_[size_t(p.noise_index)] + "' is empty");
      e.clip.from_noise_files = true;
      for (int pos = 0; pos < T; pos += int(std::min<long long>(len, T - pos)))  // loop short recordings
        e.clip.segments.push_back({p.noise_index, 0, int(std::min<long long>(len, T - pos)), pos});
    } else {
      e.synthetic = true;
    }
    p.emitters.push_back(std::move(e));
  } else if (s.noise_type == NoiseType::babble) {
    for (int k = 0; k < s.babble_talkers; ++k) {
      Rng pos_rng(cfg_.seed, index, Stream::babble, uint64_t(2 * k));
      Rng clip_rng(cfg_.seed, index, Stream::babble, uint64_t(2 * k + 1));
      const Vec3& L = s.room.size_m;
      const double m = std::min({cfg_.source.wall_margin_m, 0.49 * L.x, 0.49 * L.y, 0.49 * L.z});
      Vec3 q{pos_rng.uniform(m, L.x - m), pos_rng.uniform(m, L.y - m), pos_rng.uniform(m, L.z - m)};
      for (int j = 0; j < 50 && std::hypot(q.x - s.listener_m.x, q.y - s.listener_m.y, q.z - s.listener_m.z) < 0.5; ++j)
        q = {pos_rng.uniform(m, L.x - m), pos_rng.uniform(m, L.y - m), pos_rng.uniform(m, L.z - m)};
      NoiseEmitter e;
      e.position_m = q;
      e.clip = plan_speech_clip(clip_rng, T, nullptr);
      e.equal_level = true;
      e.tail_substream = uint64_t(2 + k);
      p.emitters.push_back(std::move(e));
    }
  }
  return p;
}

BrirRequest Renderer::brir_request(const Scene& s, const Vec3& source) const {
  BrirRequest r;
  r.room = s.room;
  r.source_m = source;
  r.listener_m = s.listener_m;
  r.yaw_deg = s.head_yaw_deg;
  r.t60_s = s.t60_s;
  r.band_t60_ratio = cfg_.render.band_t60_ratio;
  r.anechoic = s.anechoic;
  r.transition_s = cfg_.render.transition_s;
  r.fs_hz = cfg_.sample_rate_hz;
  r.c_m_s = cfg_.speed_of_sound_m_s;
  r.frac_delay_half_width = cfg_.render.frac_delay_half_width;
  return r;
}

void mix_at_snr(double snr_db, Example& ex) {
  // SNR: reverberant speech energy over noise energy, both summed over the two ears and the whole clip.
  const double e_speech = energy(ex.reverberant.data(), ex.reverberant.size());
  const double e_noise = energy(ex.noise.data(), ex.noise.size());
  const float noise_gain = e_noise > 0 ? float(std::sqrt(e_speech / (e_noise * std::pow(10.0, snr_db / 10.0)))) : 0.0f;
  for (float& v : ex.noise) v *= noise_gain;
  ex.augmented.resize(ex.reverberant.size());
  for (size_t i = 0; i < ex.augmented.size(); ++i) ex.augmented[i] = ex.reverberant[i] + ex.noise[i];

  // One gain for all four signals: mixture at -26 dBFS RMS, no sample of the mixture or clean above 0.99.
  const double rms = std::sqrt(energy(ex.augmented.data(), ex.augmented.size()) / double(ex.augmented.size()));
  double g = rms > 0 ? kMixtureRms / rms : 1.0;
  float peak = 0;
  for (float v : ex.augmented) peak = std::max(peak, std::fabs(v));
  for (float v : ex.clean) peak = std::max(peak, std::fabs(v));
  if (peak * g > kMaxPeak) g = kMaxPeak / peak;
  ex.output_gain = g;
  for (auto* sig : {&ex.clean, &ex.reverberant, &ex.noise, &ex.augmented})
    for (float& v : *sig) v = float(v * g);
}

std::vector<float> Renderer::render_noise(const ExamplePlan& plan, uint64_t index, uint64_t draw) const {
  // Diffuse noise directly at the ears, or each emitter through its own BRIR.
  const Scene& s = plan.scene;
  const int T = n_samples_;
  const HrirGrid& grid = grids_[size_t(grid_index(s))];
  const DiffuseField& df = diffuse_[size_t(grid_index(s))];
  const double fs = cfg_.sample_rate_hz;
  std::vector<float> noise(static_cast<size_t>(2 * T), 0.0f);
  const double color = noise_color_exponent(cfg_.noise.color);
  if (s.noise_type == NoiseType::diffuse) {
    Rng noise_rng(cfg_.seed, index, Stream::noise, draw);
    diffuse_noise(noise_rng, T, fs, &df, color, noise.data(), noise.data() + T);
  }
  std::vector<float> rendered(static_cast<size_t>(2 * T));
  for (const NoiseEmitter& e : plan.emitters) {
    std::vector<float> mono(static_cast<size_t>(T));
    if (e.synthetic) {
      Rng noise_rng(cfg_.seed, index, Stream::noise, draw);
      diffuse_noise(noise_rng, T, fs, nullptr, color, mono.data(), nullptr);
    } else {
      mono = assemble(e.clip, T);
    }
    // Other draws keep clear of the emitters' substreams (a few per talker) in the high 32 bits.
    Rng r(cfg_.seed, index, Stream::tail, e.tail_substream + (draw << 32));
    Brir nb;
    render_brir(brir_request(s, e.position_m), &grid, &df, r, nb);
    render_through(nb, mono, T, rendered, false);
    float g = 1.0f;
    if (e.equal_level) {  // equal level per talker
      const double en = energy(rendered.data(), rendered.size());
      g = en > 0 ? float(1.0 / std::sqrt(en)) : 0.0f;
    }
    for (size_t i = 0; i < rendered.size(); ++i) noise[i] += g * rendered[i];
  }
  return noise;
}

Example Renderer::render(uint64_t index) const {
  Example ex;
  const ExamplePlan plan = this->plan(index);
  ex.scene = plan.scene;
  ex.speech_index = plan.speech_index;
  ex.noise_index = plan.noise_index;
  const Scene& s = ex.scene;
  const int T = n_samples_;
  ex.n_samples = T;
  const HrirGrid& grid = grids_[size_t(grid_index(s))];
  const DiffuseField& df = diffuse_[size_t(grid_index(s))];
  const double fs = cfg_.sample_rate_hz;

  // Target speech through its BRIR; the clean rendering is the same speech through the direct path only.
  const std::vector<float> speech = assemble(plan.speech, T);
  Rng tail_rng(cfg_.seed, index, Stream::tail, 0);
  Brir brir;
  render_brir(brir_request(s, s.source_m), &grid, &df, tail_rng, brir);
  ex.n_images = brir.n_images;
  ex.transition_s = brir.transition_s;
  ex.direct_delay_s = brir.direct_delay_s;
  ex.reverberant.assign(static_cast<size_t>(2 * T), 0.0f);
  ex.clean.assign(static_cast<size_t>(2 * T), 0.0f);
  convolve_many(speech.data(), T,
                {brir.response[0].data(), brir.response[1].data(), brir.direct[0].data(), brir.direct[1].data()},
                brir.length, T,
                {ex.reverberant.data(), ex.reverberant.data() + T, ex.clean.data(), ex.clean.data() + T},
                SpectralTilt{float(s.speech_tilt_db_per_octave), float(fs)});

  ex.noise = render_noise(plan, index, 0);

  mix_at_snr(s.snr_db, ex);
  teacher_features(ex.clean.data(), ex.clean.data() + T, T, cfg_.features, ex.teacher);
  return ex;
}

}  // namespace bsim
