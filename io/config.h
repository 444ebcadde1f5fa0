// The resolved configuration of `bsim generate` and friends: one struct, filled from embedded defaults,
// then a YAML file, then `--set key=value` overrides; every key is typed and unknown keys are errors.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace bsim {

// A closed interval [lo, hi] sampled uniformly; a scalar in YAML means lo == hi.
struct Range {
  double lo = 0.0, hi = 0.0;
};

struct RoomConfig {
  Range length_m{3.0, 10.0};
  Range width_m{3.0, 10.0};
  Range height_m{2.5, 4.0};
  Range t60_s{0.2, 1.0};
  double anechoic_prob = 0.0;  // fraction of examples rendered with the direct path only (no walls)
  std::string absorption_model = "eyring";  // eyring | sabine: how T60 maps to wall reflection coefficients
};

struct ListenerConfig {
  Range height_m{1.2, 1.8};
  Range yaw_deg{-180.0, 180.0};  // head orientation in the room, counter-clockwise from +x
  double wall_margin_m = 0.5;
};

struct SourceConfig {
  Range azimuth_deg{-90.0, 90.0};  // relative to the head: 0 front, +90 left (SOFA convention)
  Range elevation_deg{0.0, 0.0};
  Range distance_m{1.0, 3.0};
  double wall_margin_m = 0.2;
};

struct HrtfConfig {
  std::vector<std::string> sofa{"/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"};
  double grid_azimuth_step_deg = 2.0;
  double grid_elevation_step_deg = 5.0;
  double head_radius_m = 0.0875;  // a source closer than this is impossible geometry
  // Each SOFA set is also used scaled in size by these factors (io/hrtf.h scale_head_size); one is drawn per
  // example. [1] = the measured heads only (no extra random draw: scenes as before).
  std::vector<double> head_scales{1.0};
};

struct SpeechConfig {
  std::vector<std::string> roots{"/usr/share/games/fillets-ng/sound"};
  // A file is used when one of its parent folders is named in include_dirs (empty: any) and none in
  // exclude_dirs. The default keeps English ("en") out of training as held-out test speech.
  std::vector<std::string> include_dirs{"nl", "cs"};
  std::vector<std::string> exclude_dirs{};
  std::vector<std::string> extensions{".ogg", ".wav", ".flac"};
  double min_rms_dbfs = -60.0;  // utterances quieter than this are rejected as silent
  int cache_mb = 1024;          // decoded utterances kept in memory (per process); results do not depend on it
  // Skip (and report) unreadable or empty files instead of stopping: real corpora have a few (the embedded
  // Dutch set has two empty OGG files). A corpus where 50 draws in a row fail is still an error.
  bool skip_unreadable = true;
  // Augmentation: each example's dry target speech is tilted by a slope drawn from this range, in dB per octave
  // around 1 kHz (sim/spectral_tilt.h). [0, 0] = off (no extra random draw: scenes as before).
  Range tilt_db_per_octave{0.0, 0.0};
};

// The most talkers a babble noise may have (validated): the GPU's mixing keeps one gain per talker in shared
// memory (kernels/pipeline_kernels.cuh mix_noise).
constexpr int kMaxBabbleTalkers = 32;

struct NoiseConfig {
  Range snr_db{-5.0, 20.0};
  std::map<std::string, double> type_weights{{"diffuse", 1.0}, {"point", 1.0}, {"babble", 1.0}};
  std::string color = "pink";  // white | pink | brown: spectrum of synthetic noise
  std::vector<std::string> roots{};  // optional recorded noise files for point sources
  Range babble_talkers{3, 6};
};

struct RenderConfig {
  double transition_s = 0.0;      // early/late split; 0 = auto (echo density reaches fs/2, 20-100 ms)
  int frac_delay_half_width = 16;  // windowed-sinc fractional delay: 2*w+1 taps
  // Late-tail T60 per octave band (125 Hz ... 8 kHz) relative to the room's T60 (air absorption).
  std::vector<double> band_t60_ratio{1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7};
};

struct FeatureConfig {
  std::string teacher = "gcc_phat";  // gcc_phat | ipd | ild | ipd_ild
  int n_fft = 512;
  int win_length = 400;
  int hop_length = 160;
  int gcc_max_lag = 16;  // lags -L..L samples (2L+1 features); 16 = 1 ms at 16 kHz covers any human ITD
};

struct ShardConfig {
  std::string audio_dtype = "float16";  // float16 | float32
  int compression = 0;                   // gzip level 0 (off) .. 9
  int chunk_examples = 16;               // examples per HDF5 chunk and per write
};

// A fixed evaluation grid: when enabled, example i gets cell i mod (|snr| x |t60| x |noise|) of these lists
// (SNR fastest), whatever the ranges above say. T60 0 means anechoic.
struct TestGridConfig {
  bool enabled = false;
  std::vector<double> snr_db{-5, 0, 5, 10, 15, 20};
  std::vector<double> t60_s{0.0, 0.3, 0.6, 0.9};
  std::vector<std::string> noise_types{"diffuse", "point", "babble"};
};

// btrain: the network (STFT front end -> projection -> causal LSTM encoder -> heads).
struct ModelConfig {
  std::string encoder = "lstm";  // lstm (causal LSTM, the paper's) | conformer (causal Conformer blocks)
  int width = 256;              // projection and encoder width (the paper's authors: 256)
  int layers = 3;               // LSTM layers or Conformer blocks
  int heads = 4;                // conformer: attention heads
  int conv_kernel = 15;         // conformer: causal depthwise convolution length (frames)
  std::string doa_grid = "frontal";  // frontal: [-90, 90) deg; full: [-180, 180) deg
  double doa_resolution_deg = 5.0;   // class width: frontal 5 deg = 36 classes (the paper's setting)
  // How a clip's class scores become one azimuth (train/model.h, DoaGrid::azimuth_deg): class (the winning
  // class's centre) | parabolic (the vertex of the parabola through the winner's and its neighbours' scores)
  // | local_mean (the winner and its neighbours' centres weighted by their softmax probabilities).
  std::string doa_estimate = "parabolic";
  // Which frames' DoA logits make a clip's class scores: mean (all frames alike) | last (the final frame: a
  // causal encoder's estimate after hearing the whole clip).
  std::string doa_pooling = "last";
};

// btrain: optimisation and data.
struct TrainConfig {
  int batch_size = 32;
  long long steps = 20000;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double grad_clip = 5.0;       // global gradient norm clip (0 = off)
  int log_every = 10;           // steps between CSV rows / progress lines
  int checkpoint_every = 500;   // steps between checkpoints (and at the end or on Ctrl-C)
  long long labelled_examples = 0;  // fine-tuning: cycle over this many labelled examples (0 = unlimited)
  long long val_examples = 0;   // fine-tuning: validation examples of a derived seed (0 = no validation)
  int val_every = 250;          // fine-tuning: steps between validations (and at the last step)
  std::vector<std::string> val_sofa;  // fine-tuning: SOFA files the validation examples are rendered with (empty = hrtf.sofa)
  double encoder_lr_scale = 1.0;  // fine-tuning: the encoder's learning rate over the head's (0 = frozen encoder)
  int prefetch_batches = 4;     // batches rendered or read ahead of the trainer
  std::string device = "auto";  // auto | cpu | cuda
  std::string precision = "fp32";  // fp32 | bf16: autocast of the forward pass on CUDA (loss, optimiser fp32)
  std::string simulator = "auto";  // on-the-fly batches: auto (cuda when training on CUDA and built with it) | cpu | cuda
  double dist_timeout_s = 1800;  // data-parallel: how long a rank waits for the others to join and in each collective
};

struct Config {
  unsigned long long seed = 1234;
  double sample_rate_hz = 16000.0;
  double clip_s = 4.0;
  double speed_of_sound_m_s = 343.0;
  int threads = 0;  // 0 = all cores
  RoomConfig room;
  ListenerConfig listener;
  SourceConfig source;
  HrtfConfig hrtf;
  SpeechConfig speech;
  NoiseConfig noise;
  RenderConfig render;
  FeatureConfig features;
  ShardConfig shard;
  TestGridConfig test_grid;
  ModelConfig model;
  TrainConfig train;
};

// Loads a YAML file on top of `cfg`; throws InputError naming the file and key on any problem.
void apply_config_file(Config& cfg, const std::string& path);
// Applies YAML text (e.g. the config stored in a shard or run folder); `what` names its origin in errors.
void apply_config_text(Config& cfg, const std::string& yaml, const std::string& what);
// Applies one "dotted.key=yaml-value" override.
void apply_override(Config& cfg, const std::string& assignment);
// Checks cross-field consistency (ranges ordered, positive rates, known enums).
void validate(const Config& cfg);
// The resolved configuration as YAML text (stored with every output).
std::string to_yaml(const Config& cfg);
// All dotted keys with a one-line description (for --help-config).
std::string describe_keys();

}  // namespace bsim
