// Typed configuration schema: each dotted key knows how to parse, validate and print its field.
#include "io/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "io/error.h"

namespace bsim {
namespace {

template <typename T>
struct Codec;

// Numbers print with 15 significant digits (0.2, not 0.20000000000000001): what a person typed reads back
// as typed, and the text stays stable for the resume comparisons that use it.
YAML::Node number_node(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return YAML::Node(std::string(buf));
}

[[noreturn]] void bad_type(const std::string& key, const char* want, const YAML::Node& n) {
  std::string got;
  try {
    got = YAML::Dump(n);
  } catch (...) {
    got = "?";
  }
  throw InputError("config key '" + key + "': expected " + want + ", got '" + got + "'");
}

template <>
struct Codec<double> {
  static double parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "a number", n);
    try {
      double v = n.as<double>();
      if (!std::isfinite(v)) bad_type(key, "a finite number", n);
      return v;
    } catch (const YAML::Exception&) {
      bad_type(key, "a number", n);
    }
  }
  static YAML::Node emit(double v) { return number_node(v); }
};
template <>
struct Codec<int> {
  static int parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "an integer", n);
    try {
      return n.as<int>();
    } catch (const YAML::Exception&) {
      bad_type(key, "an integer", n);
    }
  }
  static YAML::Node emit(int v) { return YAML::Node(v); }
};
template <>
struct Codec<long long> {
  static long long parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "an integer", n);
    try {
      return n.as<long long>();
    } catch (const YAML::Exception&) {
      bad_type(key, "an integer", n);
    }
  }
  static YAML::Node emit(long long v) { return YAML::Node(v); }
};
template <>
struct Codec<unsigned long long> {
  static unsigned long long parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "a non-negative integer", n);
    try {
      return n.as<unsigned long long>();
    } catch (const YAML::Exception&) {
      bad_type(key, "a non-negative integer", n);
    }
  }
  static YAML::Node emit(unsigned long long v) { return YAML::Node(v); }
};
template <>
struct Codec<bool> {
  static bool parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "true or false", n);
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      bad_type(key, "true or false", n);
    }
  }
  static YAML::Node emit(bool v) { return YAML::Node(v); }
};
template <>
struct Codec<std::string> {
  static std::string parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsScalar()) bad_type(key, "a string", n);
    return n.as<std::string>();
  }
  static YAML::Node emit(const std::string& v) { return YAML::Node(v); }
};
template <>
struct Codec<Range> {
  static Range parse(const std::string& key, const YAML::Node& n) {
    Range r;
    if (n.IsScalar()) {
      r.lo = r.hi = Codec<double>::parse(key, n);
    } else if (n.IsSequence() && n.size() == 2) {
      r.lo = Codec<double>::parse(key, n[0]);
      r.hi = Codec<double>::parse(key, n[1]);
    } else {
      bad_type(key, "a number or a [min, max] pair", n);
    }
    if (r.lo > r.hi) throw InputError("config key '" + key + "': min is larger than max");
    return r;
  }
  static YAML::Node emit(const Range& r) {
    YAML::Node n;
    n.push_back(number_node(r.lo));
    n.push_back(number_node(r.hi));
    n.SetStyle(YAML::EmitterStyle::Flow);
    return n;
  }
};
template <typename E>
struct Codec<std::vector<E>> {
  static std::vector<E> parse(const std::string& key, const YAML::Node& n) {
    std::vector<E> v;
    if (n.IsNull()) return v;
    if (n.IsScalar()) return {Codec<E>::parse(key, n)};  // a lone value is a one-element list
    if (!n.IsSequence()) bad_type(key, "a list", n);
    for (const auto& e : n) v.push_back(Codec<E>::parse(key, e));
    return v;
  }
  static YAML::Node emit(const std::vector<E>& v) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const auto& e : v) n.push_back(Codec<E>::emit(e));
    n.SetStyle(YAML::EmitterStyle::Flow);
    return n;
  }
};
template <>
struct Codec<std::map<std::string, double>> {
  static std::map<std::string, double> parse(const std::string& key, const YAML::Node& n) {
    if (!n.IsMap()) bad_type(key, "a map of name: weight", n);
    std::map<std::string, double> m;
    for (const auto& kv : n)
      m[kv.first.as<std::string>()] = Codec<double>::parse(key + "." + kv.first.as<std::string>(), kv.second);
    return m;
  }
  static YAML::Node emit(const std::map<std::string, double>& m) {
    YAML::Node n(YAML::NodeType::Map);
    for (const auto& kv : m) n[kv.first] = number_node(kv.second);
    n.SetStyle(YAML::EmitterStyle::Flow);
    return n;
  }
};

struct Field {
  std::string key, help;
  std::function<void(Config&, const YAML::Node&)> set;
  std::function<YAML::Node(const Config&)> get;
};

template <typename T>
Field field(std::string key, std::string help, T Config::*member) {
  return {key, std::move(help),
          [key, member](Config& c, const YAML::Node& n) { c.*member = Codec<T>::parse(key, n); },
          [member](const Config& c) { return Codec<T>::emit(c.*member); }};
}
template <typename S, typename T>
Field field(std::string key, std::string help, S Config::*section, T S::*member) {
  return {key, std::move(help),
          [key, section, member](Config& c, const YAML::Node& n) {
            (c.*section).*member = Codec<T>::parse(key, n);
          },
          [section, member](const Config& c) { return Codec<T>::emit((c.*section).*member); }};
}

const std::vector<Field>& schema() {
  using C = Config;
  static const std::vector<Field> fields = {
      field("seed", "base seed; example i is rendered from (seed, i) alone", &C::seed),
      field("sample_rate_hz", "simulation sample rate (HRIRs and audio are resampled to it)", &C::sample_rate_hz),
      field("clip_s", "length of every rendered example in seconds", &C::clip_s),
      field("speed_of_sound_m_s", "speed of sound", &C::speed_of_sound_m_s),
      field("threads", "worker threads (0 = all cores, shared by the ranks torchrun starts on the machine)", &C::threads),
      field("room.length_m", "room size along x", &C::room, &RoomConfig::length_m),
      field("room.width_m", "room size along y", &C::room, &RoomConfig::width_m),
      field("room.height_m", "room size along z", &C::room, &RoomConfig::height_m),
      field("room.t60_s", "reverberation time (broadband, 60 dB decay)", &C::room, &RoomConfig::t60_s),
      field("room.anechoic_prob", "probability of an anechoic example", &C::room, &RoomConfig::anechoic_prob),
      field("room.absorption_model", "eyring | sabine: T60 to wall reflection coefficient", &C::room,
            &RoomConfig::absorption_model),
      field("listener.height_m", "ear height above the floor", &C::listener, &ListenerConfig::height_m),
      field("listener.yaw_deg", "head yaw in the room, CCW from +x", &C::listener, &ListenerConfig::yaw_deg),
      field("listener.wall_margin_m", "minimum listener distance to any wall", &C::listener,
            &ListenerConfig::wall_margin_m),
      field("source.azimuth_deg", "source azimuth relative to the head (0 front, +90 left)", &C::source,
            &SourceConfig::azimuth_deg),
      field("source.elevation_deg", "source elevation relative to the head", &C::source,
            &SourceConfig::elevation_deg),
      field("source.distance_m", "source distance from the head centre", &C::source, &SourceConfig::distance_m),
      field("source.wall_margin_m", "minimum source distance to any wall", &C::source,
            &SourceConfig::wall_margin_m),
      field("hrtf.sofa", "SOFA files (SimpleFreeFieldHRIR); one is drawn per example", &C::hrtf,
            &HrtfConfig::sofa),
      field("hrtf.grid_azimuth_step_deg", "azimuth step of the interpolated HRIR grid", &C::hrtf,
            &HrtfConfig::grid_azimuth_step_deg),
      field("hrtf.grid_elevation_step_deg", "elevation step of the interpolated HRIR grid", &C::hrtf,
            &HrtfConfig::grid_elevation_step_deg),
      field("hrtf.head_radius_m", "head radius; sources must be farther", &C::hrtf, &HrtfConfig::head_radius_m),
      field("hrtf.head_scales",
            "each SOFA set is also used scaled in size by these factors (interaural delays x s, spectra / s), one drawn "
            "per example: augmentation towards unmeasured heads; [1] = the measured heads only",
            &C::hrtf, &HrtfConfig::head_scales),
      field("speech.roots", "folders scanned recursively for speech", &C::speech, &SpeechConfig::roots),
      field("speech.include_dirs", "use files under a folder with one of these names (empty = any)", &C::speech,
            &SpeechConfig::include_dirs),
      field("speech.exclude_dirs", "skip files under a folder with one of these names", &C::speech,
            &SpeechConfig::exclude_dirs),
      field("speech.extensions", "audio file extensions to use", &C::speech, &SpeechConfig::extensions),
      field("speech.min_rms_dbfs", "reject utterances quieter than this", &C::speech, &SpeechConfig::min_rms_dbfs),
      field("speech.skip_unreadable", "skip and report unreadable or empty speech files instead of stopping",
            &C::speech, &SpeechConfig::skip_unreadable),
      field("speech.cache_mb", "memory for decoded utterances (speed only)", &C::speech, &SpeechConfig::cache_mb),
      field("speech.tilt_db_per_octave",
            "augmentation: spectral tilt of the target speech drawn per example, dB per octave around 1 kHz (zero "
            "phase, flat below 125 Hz; the noise is not tilted); [0, 0] = off",
            &C::speech, &SpeechConfig::tilt_db_per_octave),
      field("noise.snr_db", "SNR: reverberant speech vs noise, energy summed over both ears", &C::noise,
            &NoiseConfig::snr_db),
      field("noise.type_weights", "relative probability of diffuse | point | babble noise", &C::noise,
            &NoiseConfig::type_weights),
      field("noise.color", "white | pink | brown spectrum of synthetic noise", &C::noise, &NoiseConfig::color),
      field("noise.roots", "folders of recorded noise for point sources (empty = synthetic)", &C::noise,
            &NoiseConfig::roots),
      field("noise.babble_talkers", "number of talkers in babble noise", &C::noise, &NoiseConfig::babble_talkers),
      field("render.transition_s", "early/late split in seconds (0 = auto)", &C::render,
            &RenderConfig::transition_s),
      field("render.frac_delay_half_width", "windowed-sinc half width in taps", &C::render,
            &RenderConfig::frac_delay_half_width),
      field("render.band_t60_ratio", "late-tail T60 per octave band 125 Hz..8 kHz relative to room.t60_s",
            &C::render, &RenderConfig::band_t60_ratio),
      field("features.teacher", "gcc_phat | ipd | ild | ipd_ild", &C::features, &FeatureConfig::teacher),
      field("features.n_fft", "STFT size", &C::features, &FeatureConfig::n_fft),
      field("features.win_length", "STFT Hann window length", &C::features, &FeatureConfig::win_length),
      field("features.hop_length", "STFT hop", &C::features, &FeatureConfig::hop_length),
      field("features.gcc_max_lag", "GCC-PHAT lags -L..L samples", &C::features, &FeatureConfig::gcc_max_lag),
      field("shard.audio_dtype", "float16 | float32 storage of audio", &C::shard, &ShardConfig::audio_dtype),
      field("shard.compression", "gzip level 0..9 (0 = off)", &C::shard, &ShardConfig::compression),
      field("shard.chunk_examples", "examples per HDF5 chunk", &C::shard, &ShardConfig::chunk_examples),
      field("test_grid.enabled", "evaluation grid: example i takes cell i of snr x t60 x noise", &C::test_grid,
            &TestGridConfig::enabled),
      field("test_grid.snr_db", "evaluation grid SNRs", &C::test_grid, &TestGridConfig::snr_db),
      field("test_grid.t60_s", "evaluation grid T60s (0 = anechoic)", &C::test_grid, &TestGridConfig::t60_s),
      field("test_grid.noise_types", "evaluation grid noise types", &C::test_grid, &TestGridConfig::noise_types),
      field("model.encoder", "btrain: lstm | conformer (both causal)", &C::model, &ModelConfig::encoder),
      field("model.width", "btrain: projection and encoder width", &C::model, &ModelConfig::width),
      field("model.layers", "btrain: LSTM layers or Conformer blocks", &C::model, &ModelConfig::layers),
      field("model.heads", "btrain conformer: attention heads", &C::model, &ModelConfig::heads),
      field("model.conv_kernel", "btrain conformer: causal depthwise convolution length", &C::model,
            &ModelConfig::conv_kernel),
      field("model.doa_grid", "btrain: frontal ([-90, 90)) or full ([-180, 180)) azimuth classes", &C::model,
            &ModelConfig::doa_grid),
      field("model.doa_resolution_deg", "btrain: width of one DoA class", &C::model, &ModelConfig::doa_resolution_deg),
      field("model.doa_estimate",
            "btrain: a clip's azimuth from its class scores: class (the winner's centre) | parabolic (the vertex "
            "through the winner and its neighbours) | local_mean (their centres weighted by probability)",
            &C::model, &ModelConfig::doa_estimate),
      field("model.doa_pooling",
            "btrain: a clip's class scores from its frames' logits: mean (all frames) | last (the final frame, "
            "which a causal encoder reaches having heard the whole clip)",
            &C::model, &ModelConfig::doa_pooling),
      field("train.batch_size", "btrain: examples per step", &C::train, &TrainConfig::batch_size),
      field("train.steps", "btrain: optimiser steps", &C::train, &TrainConfig::steps),
      field("train.lr", "btrain: Adam learning rate", &C::train, &TrainConfig::lr),
      field("train.weight_decay", "btrain: AdamW weight decay", &C::train, &TrainConfig::weight_decay),
      field("train.grad_clip", "btrain: gradient norm clip (0 = off)", &C::train, &TrainConfig::grad_clip),
      field("train.log_every", "btrain: steps between log rows", &C::train, &TrainConfig::log_every),
      field("train.checkpoint_every", "btrain: steps between checkpoints", &C::train, &TrainConfig::checkpoint_every),
      field("train.labelled_examples", "btrain finetune: labelled examples to cycle over (0 = unlimited)", &C::train,
            &TrainConfig::labelled_examples),
      field("train.val_examples", "btrain finetune --on-the-fly: validation examples (the training distribution, a seed "
            "derived from seed) scored every train.val_every steps; the best step's model goes to best/ and is what "
            "btrain eval scores (0 = off)", &C::train, &TrainConfig::val_examples),
      field("train.val_every", "btrain finetune: steps between validations", &C::train, &TrainConfig::val_every),
      field("train.val_sofa", "btrain finetune: SOFA files the validation examples are rendered with instead of "
            "hrtf.sofa (empty = the training heads), e.g. a head held out of fine-tuning, so that early stopping "
            "and the choice between runs favour what generalises to unseen listeners", &C::train, &TrainConfig::val_sofa),
      field("train.encoder_lr_scale", "btrain finetune: the encoder's learning rate as a multiple of train.lr (the "
            "DoA head keeps train.lr); 0 freezes the encoder: a linear probe of the pretrained representation",
            &C::train, &TrainConfig::encoder_lr_scale),
      field("train.prefetch_batches", "btrain: batches prepared ahead", &C::train, &TrainConfig::prefetch_batches),
      field("train.device", "btrain: auto | cpu | cuda", &C::train, &TrainConfig::device),
      field("train.precision", "btrain on CUDA: fp32 | bf16 (autocast forward pass; stalls the LSTM, see bench/RESULTS.md)", &C::train, &TrainConfig::precision),
      field("train.simulator", "btrain --on-the-fly: where batches are rendered: auto | cpu | cuda", &C::train,
            &TrainConfig::simulator),
      field("train.dist_timeout_s", "btrain data-parallel: seconds a rank waits for the others, to join (every rank "
            "opens its data first: a long --preload counts) and in each step's all-reduce, before it stops with an "
            "error; a rank that hangs stops the launch after this long (torch.distributed's default: 1800)",
            &C::train, &TrainConfig::dist_timeout_s),
  };
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema())
    if (f.key == key) return &f;
  return nullptr;
}

bool is_section(const std::string& prefix) {
  for (const auto& f : schema())
    if (f.key.rfind(prefix + ".", 0) == 0) return true;
  return false;
}

[[noreturn]] void unknown_key(const std::string& key) {
  // Suggest the known key that shares the longest prefix: most typos are in the last component.
  std::string best;
  size_t best_len = 0;
  for (const auto& f : schema()) {
    size_t n = 0;
    while (n < key.size() && n < f.key.size() && key[n] == f.key[n]) ++n;
    if (n > best_len) best_len = n, best = f.key;
  }
  throw InputError("unknown config key '" + key + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)") +
                   "; `bsim help-config` lists every key");
}

void apply_node(Config& cfg, const std::string& prefix, const YAML::Node& node) {
  if (const Field* f = find_field(prefix)) {
    f->set(cfg, node);
    return;
  }
  if (!prefix.empty() && !is_section(prefix)) unknown_key(prefix);
  if (!node.IsMap()) {
    if (prefix.empty() && node.IsNull()) return;  // an empty file changes nothing
    throw InputError("config key '" + (prefix.empty() ? std::string("<top>") : prefix) + "': expected a map");
  }
  for (const auto& kv : node) {
    const std::string k = kv.first.as<std::string>();
    apply_node(cfg, prefix.empty() ? k : prefix + "." + k, kv.second);
  }
}

}  // namespace

void apply_config_file(Config& cfg, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw InputError("config file '" + path + "' cannot be read: check the path");
  } catch (const YAML::Exception& e) {
    throw InputError("config file '" + path + "' is not valid YAML: " + e.msg + " at line " +
                     std::to_string(e.mark.line + 1));
  }
  try {
    apply_node(cfg, "", root);
  } catch (const InputError& e) {
    throw InputError("config file '" + path + "': " + e.what());
  }
}

void apply_config_text(Config& cfg, const std::string& yaml, const std::string& what) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw InputError(what + ": configuration is not valid YAML: " + e.msg);
  }
  try {
    apply_node(cfg, "", root);
  } catch (const InputError& e) {
    throw InputError(what + ": " + e.what());
  }
}

void apply_override(Config& cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set '" + assignment + "': expected key=value, for example --set room.t60_s=[0.3,0.6]");
  const std::string key = assignment.substr(0, eq);
  const Field* f = find_field(key);
  if (!f) unknown_key(key);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw InputError("--set " + key + ": value is not valid YAML: " + e.msg);
  }
  f->set(cfg, value);
}

void validate(const Config& c) {
  auto positive = [](const Range& r, const char* key) {
    if (!(r.lo > 0)) throw InputError(std::string("config key '") + key + "' must be positive");
  };
  BSIM_EXPECTS(c.sample_rate_hz >= 8000 && c.sample_rate_hz <= 192000,
               "config key 'sample_rate_hz' must be within 8000..192000");
  BSIM_EXPECTS(c.clip_s > 0 && c.clip_s <= 60, "config key 'clip_s' must be within (0, 60] seconds");
  BSIM_EXPECTS(c.speed_of_sound_m_s > 100 && c.speed_of_sound_m_s < 2000,
               "config key 'speed_of_sound_m_s' must be within 100..2000");
  BSIM_EXPECTS(c.threads >= 0, "config key 'threads' must be >= 0");
  positive(c.room.length_m, "room.length_m");
  positive(c.room.width_m, "room.width_m");
  positive(c.room.height_m, "room.height_m");
  positive(c.room.t60_s, "room.t60_s");
  BSIM_EXPECTS(c.room.t60_s.hi <= 10, "config key 'room.t60_s' must be at most 10 s");
  BSIM_EXPECTS(c.room.anechoic_prob >= 0 && c.room.anechoic_prob <= 1,
               "config key 'room.anechoic_prob' must be within [0, 1]");
  BSIM_EXPECTS(c.room.absorption_model == "eyring" || c.room.absorption_model == "sabine",
               "config key 'room.absorption_model' must be 'eyring' or 'sabine'");
  BSIM_EXPECTS(c.listener.wall_margin_m >= 0, "config key 'listener.wall_margin_m' must be >= 0");
  BSIM_EXPECTS(c.source.wall_margin_m >= 0, "config key 'source.wall_margin_m' must be >= 0");
  BSIM_EXPECTS(c.source.elevation_deg.lo >= -90 && c.source.elevation_deg.hi <= 90,
               "config key 'source.elevation_deg' must be within [-90, 90]");
  BSIM_EXPECTS(c.source.distance_m.lo > c.hrtf.head_radius_m,
               "config key 'source.distance_m': the source must be farther than the head radius (" +
                   std::to_string(c.hrtf.head_radius_m) + " m)");
  BSIM_EXPECTS(!c.hrtf.sofa.empty(), "config key 'hrtf.sofa' needs at least one SOFA file");
  BSIM_EXPECTS(c.hrtf.grid_azimuth_step_deg > 0 && c.hrtf.grid_azimuth_step_deg <= 30,
               "config key 'hrtf.grid_azimuth_step_deg' must be within (0, 30]");
  BSIM_EXPECTS(c.hrtf.grid_elevation_step_deg > 0 && c.hrtf.grid_elevation_step_deg <= 30,
               "config key 'hrtf.grid_elevation_step_deg' must be within (0, 30]");
  BSIM_EXPECTS(c.hrtf.head_radius_m > 0, "config key 'hrtf.head_radius_m' must be positive");
  BSIM_EXPECTS(!c.hrtf.head_scales.empty(), "config key 'hrtf.head_scales' needs at least one factor ([1]: no scaling)");
  for (double s : c.hrtf.head_scales)
    BSIM_EXPECTS(s >= 0.5 && s <= 2.0, "config key 'hrtf.head_scales' values must be within [0.5, 2]");
  BSIM_EXPECTS(!c.speech.roots.empty(), "config key 'speech.roots' needs at least one folder");
  BSIM_EXPECTS(c.speech.cache_mb >= 0, "config key 'speech.cache_mb' must be >= 0");
  BSIM_EXPECTS(c.speech.tilt_db_per_octave.lo >= -12 && c.speech.tilt_db_per_octave.hi <= 12,
               "config key 'speech.tilt_db_per_octave' must be within [-12, 12] dB per octave");
  double wsum = 0;
  for (const auto& kv : c.noise.type_weights) {
    BSIM_EXPECTS(kv.first == "diffuse" || kv.first == "point" || kv.first == "babble",
                 "config key 'noise.type_weights': unknown noise type '" + kv.first +
                     "' (use diffuse, point, babble)");
    BSIM_EXPECTS(kv.second >= 0, "config key 'noise.type_weights': weights must be >= 0");
    wsum += kv.second;
  }
  BSIM_EXPECTS(wsum > 0, "config key 'noise.type_weights': at least one weight must be positive");
  BSIM_EXPECTS(c.noise.color == "white" || c.noise.color == "pink" || c.noise.color == "brown",
               "config key 'noise.color' must be white, pink or brown");
  BSIM_EXPECTS(c.noise.babble_talkers.lo >= 1 && c.noise.babble_talkers.hi <= kMaxBabbleTalkers,
               "config key 'noise.babble_talkers' must be within [1, " + std::to_string(kMaxBabbleTalkers) + "]");
  BSIM_EXPECTS(c.render.transition_s >= 0 && c.render.transition_s <= 0.5,
               "config key 'render.transition_s' must be within [0, 0.5] s");
  BSIM_EXPECTS(c.render.frac_delay_half_width >= 2 && c.render.frac_delay_half_width <= 128,
               "config key 'render.frac_delay_half_width' must be within [2, 128]");
  BSIM_EXPECTS(c.render.band_t60_ratio.size() == 7,
               "config key 'render.band_t60_ratio' needs 7 values (125 Hz .. 8 kHz octave bands)");
  for (double r : c.render.band_t60_ratio)
    BSIM_EXPECTS(r > 0.05 && r <= 2.0, "config key 'render.band_t60_ratio' values must be within (0.05, 2]");
  const auto& f = c.features;
  BSIM_EXPECTS(f.teacher == "gcc_phat" || f.teacher == "ipd" || f.teacher == "ild" || f.teacher == "ipd_ild",
               "config key 'features.teacher' must be gcc_phat, ipd, ild or ipd_ild");
  BSIM_EXPECTS(f.n_fft >= 16 && f.n_fft <= 16384, "config key 'features.n_fft' must be within [16, 16384]");
  BSIM_EXPECTS(f.win_length > 0 && f.win_length <= f.n_fft,
               "config key 'features.win_length' must be within [1, features.n_fft]");
  BSIM_EXPECTS(f.hop_length > 0, "config key 'features.hop_length' must be positive");
  BSIM_EXPECTS(f.gcc_max_lag >= 0 && 2 * f.gcc_max_lag < f.n_fft,
               "config key 'features.gcc_max_lag' must be within [0, n_fft/2)");
  BSIM_EXPECTS(c.clip_s * c.sample_rate_hz >= f.win_length, "config: clip_s is shorter than one STFT window");
  BSIM_EXPECTS(c.shard.audio_dtype == "float16" || c.shard.audio_dtype == "float32",
               "config key 'shard.audio_dtype' must be float16 or float32");
  BSIM_EXPECTS(c.shard.compression >= 0 && c.shard.compression <= 9,
               "config key 'shard.compression' must be within 0..9");
  BSIM_EXPECTS(c.shard.chunk_examples >= 1 && c.shard.chunk_examples <= 1024,
               "config key 'shard.chunk_examples' must be within 1..1024");
  if (c.test_grid.enabled) {
    BSIM_EXPECTS(!c.test_grid.snr_db.empty() && !c.test_grid.t60_s.empty() && !c.test_grid.noise_types.empty(),
                 "config keys 'test_grid.*' need at least one value each");
    for (double t : c.test_grid.t60_s)
      BSIM_EXPECTS(t >= 0 && t <= 10, "config key 'test_grid.t60_s' values must be within [0, 10] (0 = anechoic)");
    for (const auto& n : c.test_grid.noise_types)
      BSIM_EXPECTS(n == "diffuse" || n == "point" || n == "babble",
                   "config key 'test_grid.noise_types': unknown noise type '" + n + "'");
  }
  BSIM_EXPECTS(c.model.width >= 4 && c.model.width <= 4096, "config key 'model.width' must be within 4..4096");
  BSIM_EXPECTS(c.model.encoder == "lstm" || c.model.encoder == "conformer",
               "config key 'model.encoder' must be lstm or conformer");
  BSIM_EXPECTS(c.model.heads >= 1 && c.model.width % c.model.heads == 0,
               "config key 'model.heads' must divide model.width");
  BSIM_EXPECTS(c.model.conv_kernel >= 1 && c.model.conv_kernel <= 255, "config key 'model.conv_kernel' must be within 1..255");
  BSIM_EXPECTS(c.model.layers >= 1 && c.model.layers <= 16, "config key 'model.layers' must be within 1..16");
  BSIM_EXPECTS(c.model.doa_grid == "frontal" || c.model.doa_grid == "full",
               "config key 'model.doa_grid' must be frontal or full");
  BSIM_EXPECTS(c.model.doa_resolution_deg >= 0.5 && c.model.doa_resolution_deg <= 90,
               "config key 'model.doa_resolution_deg' must be within [0.5, 90]");
  BSIM_EXPECTS(c.model.doa_estimate == "class" || c.model.doa_estimate == "parabolic" || c.model.doa_estimate == "local_mean",
               "config key 'model.doa_estimate' must be class, parabolic or local_mean");
  BSIM_EXPECTS(c.model.doa_pooling == "mean" || c.model.doa_pooling == "last",
               "config key 'model.doa_pooling' must be mean or last");
  BSIM_EXPECTS(c.train.batch_size >= 1 && c.train.batch_size <= 4096, "config key 'train.batch_size' must be within 1..4096");
  BSIM_EXPECTS(c.train.steps >= 1, "config key 'train.steps' must be >= 1");
  BSIM_EXPECTS(c.train.lr > 0 && c.train.lr < 10, "config key 'train.lr' must be within (0, 10)");
  BSIM_EXPECTS(c.train.weight_decay >= 0, "config key 'train.weight_decay' must be >= 0");
  BSIM_EXPECTS(c.train.grad_clip >= 0, "config key 'train.grad_clip' must be >= 0");
  BSIM_EXPECTS(c.train.log_every >= 1, "config key 'train.log_every' must be >= 1");
  BSIM_EXPECTS(c.train.checkpoint_every >= 1, "config key 'train.checkpoint_every' must be >= 1");
  BSIM_EXPECTS(c.train.labelled_examples >= 0, "config key 'train.labelled_examples' must be >= 0");
  BSIM_EXPECTS(c.train.val_examples >= 0, "config key 'train.val_examples' must be >= 0");
  BSIM_EXPECTS(c.train.val_every >= 1, "config key 'train.val_every' must be >= 1");
  BSIM_EXPECTS(c.train.val_sofa.empty() || c.train.val_examples > 0,
               "config key 'train.val_sofa' renders validation examples: set train.val_examples > 0 too");
  BSIM_EXPECTS(c.train.encoder_lr_scale >= 0 && c.train.encoder_lr_scale <= 100,
               "config key 'train.encoder_lr_scale' must be within [0, 100] (0 freezes the encoder)");
  BSIM_EXPECTS(c.train.prefetch_batches >= 1 && c.train.prefetch_batches <= 64,
               "config key 'train.prefetch_batches' must be within 1..64");
  BSIM_EXPECTS(c.train.device == "auto" || c.train.device == "cpu" || c.train.device == "cuda",
               "config key 'train.device' must be auto, cpu or cuda");
  BSIM_EXPECTS(c.train.precision == "bf16" || c.train.precision == "fp32",
               "config key 'train.precision' must be bf16 or fp32");
  BSIM_EXPECTS(c.train.simulator == "auto" || c.train.simulator == "cpu" || c.train.simulator == "cuda",
               "config key 'train.simulator' must be auto, cpu or cuda");
  BSIM_EXPECTS(c.train.dist_timeout_s >= 1 && c.train.dist_timeout_s <= 7 * 86400,
               "config key 'train.dist_timeout_s' must be within 1..604800 seconds");
}

std::string to_yaml(const Config& cfg) {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& f : schema()) {
    const auto dot = f.key.find('.');
    if (dot == std::string::npos)
      root[f.key] = f.get(cfg);
    else
      root[f.key.substr(0, dot)][f.key.substr(dot + 1)] = f.get(cfg);
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string describe_keys() {
  std::ostringstream os;
  const Config defaults;
  for (const auto& f : schema()) {
    YAML::Emitter e;
    e << YAML::Flow << f.get(defaults);
    os << "  " << f.key << std::string(f.key.size() < 28 ? 28 - f.key.size() : 1, ' ') << f.help
       << "  [default " << e.c_str() << "]\n";
  }
  return os.str();
}

}  // namespace bsim
