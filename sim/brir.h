// Binaural room impulse responses: per-image HRIRs up to the transition time, then a late tail of
// decaying noise with per-octave-band decay and the interaural coherence of a diffuse field.
#pragma once
#include <vector>

#include "io/hrtf.h"
#include "sim/rng.h"
#include "sim/room.h"

namespace bsim {

// Diffuse-field statistics of an HRTF set: per-ear RMS magnitude over directions (solid-angle weighted,
// measured elevations only) and the real interaural coherence, on n_fft/2+1 bins at the grid's rate.
struct DiffuseField {
  int n_fft = 0;
  double fs_hz = 0;
  std::vector<float> magnitude[2];
  std::vector<float> coherence;
  float magnitude_at(int ear, double f_hz) const;  // linear interpolation in frequency
  float coherence_at(double f_hz) const;
};
DiffuseField compute_diffuse_field(const HrirGrid& grid);

// The octave bands of the late tail: centres 125 Hz .. 8 kHz, complementary cos^2 crossovers on a log axis.
constexpr int kTailBands = 7;
constexpr double kTailFadeS = 0.004;  // the tail fades in over 4 ms centred on the transition time (CPU and GPU)
double band_weight(int band, double f_hz);

// The bands grouped by equal T60 ratio. Bands that decay alike are rendered as one filtered noise with the sum
// of their weights (exact: the filtering is linear), so a tail costs one inverse transform and one envelope per
// distinct ratio: 4 instead of 7 with the default ratios (1, 1, 1, 1, 0.95, 0.85, 0.7).
struct TailBandGroups {
  std::vector<double> ratio;       // per group, in order of first appearance
  std::vector<int> group_of_band;  // kTailBands entries
  // weight[g] at f: the sum of band_weight over the group's bands
  double weight(int group, double f_hz) const;
};
TailBandGroups tail_band_groups(const std::vector<double>& band_t60_ratio);

// Early/late split: when the image density 4 pi c^3 t^2 / V reaches fs/2 (one image per two samples),
// clamped to 20..100 ms.
double auto_transition_s(double volume_m3, double fs_hz, double c_m_s);

struct BrirRequest {
  Shoebox room;             // beta already set
  Vec3 source_m, listener_m;
  double yaw_deg = 0;       // head orientation, CCW from +x
  double t60_s = 0.5;       // room T60 the tail decays with (band ratios apply on top)
  std::vector<double> band_t60_ratio = std::vector<double>(kTailBands, 1.0);
  bool anechoic = false;    // direct path only
  bool late_tail = true;    // false: images only up to image_limit (for comparisons with other ISMs)
  ImageLimit image_limit;   // used when late_tail is false
  double transition_s = 0;  // 0 = auto
  double fs_hz = 16000, c_m_s = 343.0;
  int frac_delay_half_width = 16;
  int length = 0;           // samples; 0 = long enough for the tail to reach -60 dB
};

struct Brir {
  int length = 0;
  int channels = 0;               // 2 with an HRIR grid, 1 for an omnidirectional receiver
  std::vector<float> response[2];  // early + late
  std::vector<float> direct[2];    // the direct path alone (what the clean rendering uses)
  int n_images = 0;
  double transition_s = 0;
  double direct_delay_s = 0, direct_gain = 0;
  double azimuth_deg = 0, elevation_deg = 0;  // of the direct path, in head coordinates
};

// Renders one BRIR (grid != nullptr) or omnidirectional RIR (grid == nullptr, diffuse unused).
// `tail_rng` drives the late tail. Throws InputError for geometry outside the room.
void render_brir(const BrirRequest& req, const HrirGrid* grid, const DiffuseField* diffuse, Rng& tail_rng,
                 Brir& out);

// Direction of p seen from a head at `listener` with yaw `yaw_deg`, in head coordinates (degrees).
void head_direction(const Vec3& p, const Vec3& listener, double yaw_deg, double& azimuth_deg,
                    double& elevation_deg, double& distance_m);

// Samples of a BRIR whose last image arrives at last_arrival_s and whose late tail (tail_t60_s > 0) lasts
// T60 x the largest band ratio: to the later of the two, plus the HRIR (n_taps) and the fractional-delay kernel.
// render_brir's length when BrirRequest::length is 0; the GPU pipeline sizes its rows and tails with it too.
int brir_length_samples(double last_arrival_s, double tail_t60_s, const std::vector<double>& band_t60_ratio,
                        double fs_hz, int n_taps, int frac_delay_half_width);

// The colour of synthetic noise on the nb = n_fft/2 + 1 bins of an n_fft-point transform: amplitude
// 1/f^(exponent/2) (white 0, pink 1, brown 2), flat below 50 Hz, normalised to unit mean power over the bins.
std::vector<float> noise_color_shape(int n_fft, double fs_hz, double color_exponent);

// Two noises with the coherence and per-ear spectra of a diffuse field (white in, shaped out), written
// to out_l/out_r (n samples). Used for the late tail and for diffuse noise.
void diffuse_noise(Rng& rng, int n, double fs_hz, const DiffuseField* diffuse, double color_exponent,
                   float* out_l, float* out_r);

}  // namespace bsim
