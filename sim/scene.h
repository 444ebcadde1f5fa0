// One training example's acoustic scene, drawn from the config by a seeded sampler: example i of seed s
// is the same on every machine and thread count, which is what makes generation resumable.
#pragma once
#include <cmath>
#include <cstdint>

#include "io/config.h"
#include "sim/room.h"

namespace bsim {

enum class NoiseType : int { diffuse = 0, point = 1, babble = 2 };
const char* noise_type_name(NoiseType t);

struct Scene {
  uint64_t index = 0;
  Shoebox room;              // size and wall reflection coefficients
  double t60_s = 0;
  bool anechoic = false;
  Vec3 listener_m;
  double head_yaw_deg = 0;   // CCW from the room's +x axis
  Vec3 source_m;
  double azimuth_deg = 0, elevation_deg = 0, distance_m = 0;  // source relative to the head (the labels)
  int hrtf_index = 0;        // which of hrtf.sofa
  int head_scale_index = 0;  // which of hrtf.head_scales
  double head_scale = 1.0;   // its value
  NoiseType noise_type = NoiseType::diffuse;
  double snr_db = 0;
  int babble_talkers = 0;
  Vec3 noise_source_m;       // point noise position (meaningful for point noise only)
  double speech_tilt_db_per_octave = 0;  // spectral tilt of the dry speech (speech.tilt_db_per_octave)
};

// Which HRIR grid renders the scene: one grid per (hrtf.sofa entry, hrtf.head_scales entry), set-major.
inline int hrir_grid_index(const Config& cfg, const Scene& s) {
  return s.hrtf_index * int(cfg.hrtf.head_scales.size()) + s.head_scale_index;
}

// Angular distance between two azimuths in degrees, in [0, 180] (wraps around the circle): the DoA error.
inline double azimuth_error_deg(double estimate, double truth) {
  return std::fabs(std::fmod(estimate - truth + 540.0, 360.0) - 180.0);
}

// Throws InputError when the ranges make a valid scene impossible (listener or source cannot be placed).
Scene sample_scene(const Config& cfg, int n_hrtf, uint64_t index);

// Checks that the config's geometry ranges can produce scenes at all (before any work starts).
void check_geometry(const Config& cfg);

AbsorptionModel absorption_model(const Config& cfg);

}  // namespace bsim
