// Seeded scene sampling with rejection of impossible placements.
#include "sim/scene.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "io/error.h"
#include "sim/rng.h"

namespace bsim {
namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr int kRoomTries = 200, kPlacementTries = 50;

double draw(Rng& rng, const Range& r) { return r.lo == r.hi ? r.lo : rng.uniform(r.lo, r.hi); }

bool inside_with_margin(const Vec3& p, const Vec3& L, double m) {
  return p.x >= m && p.x <= L.x - m && p.y >= m && p.y <= L.y - m && p.z >= m && p.z <= L.z - m;
}

std::string range_text(const Range& r) {
  return "[" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}
}  // namespace

const char* noise_type_name(NoiseType t) {
  switch (t) {
    case NoiseType::diffuse: return "diffuse";
    case NoiseType::point: return "point";
    case NoiseType::babble: return "babble";
  }
  return "?";
}

AbsorptionModel absorption_model(const Config& cfg) {
  return cfg.room.absorption_model == "sabine" ? AbsorptionModel::sabine : AbsorptionModel::eyring;
}

void check_geometry(const Config& cfg) {
  const auto& r = cfg.room;
  const double m = cfg.listener.wall_margin_m;
  if (2 * m >= r.length_m.hi || 2 * m >= r.width_m.hi)
    throw InputError("listener.wall_margin_m " + std::to_string(m) + " m leaves no room for the listener in rooms of "
                     "room.length_m " + range_text(r.length_m) + " x room.width_m " + range_text(r.width_m));
  if (cfg.listener.height_m.lo <= 0 || cfg.listener.height_m.lo >= r.height_m.hi)
    throw InputError("listener.height_m " + range_text(cfg.listener.height_m) +
                     " puts the listener outside rooms of room.height_m " + range_text(r.height_m));
  if (cfg.source.distance_m.lo <= cfg.hrtf.head_radius_m)
    throw InputError("source.distance_m " + range_text(cfg.source.distance_m) +
                     " puts the source inside the head (radius " + std::to_string(cfg.hrtf.head_radius_m) + " m)");
  if (cfg.source.distance_m.lo >= std::hypot(r.length_m.hi, r.width_m.hi, r.height_m.hi))
    throw InputError("source.distance_m " + range_text(cfg.source.distance_m) + " does not fit in the largest room");
}

Scene sample_scene(const Config& cfg, int n_hrtf, uint64_t index) {
  Rng rng(cfg.seed, index, Stream::scene);
  Scene s;
  s.index = index;
  for (int room_try = 0; room_try < kRoomTries; ++room_try) {
    Vec3 L{draw(rng, cfg.room.length_m), draw(rng, cfg.room.width_m), draw(rng, cfg.room.height_m)};
    const double m = cfg.listener.wall_margin_m;
    if (L.x <= 2 * m || L.y <= 2 * m) continue;
    Vec3 lis{rng.uniform(m, L.x - m), rng.uniform(m, L.y - m), draw(rng, cfg.listener.height_m)};
    if (!(lis.z > 0 && lis.z < L.z)) continue;
    const double yaw = draw(rng, cfg.listener.yaw_deg);
    for (int k = 0; k < kPlacementTries; ++k) {
      const double az = draw(rng, cfg.source.azimuth_deg), el = draw(rng, cfg.source.elevation_deg);
      const double d = draw(rng, cfg.source.distance_m);
      const double a = (az + yaw) * kPi / 180.0, e = el * kPi / 180.0;
      Vec3 src{lis.x + d * std::cos(e) * std::cos(a), lis.y + d * std::cos(e) * std::sin(a), lis.z + d * std::sin(e)};
      if (!inside_with_margin(src, L, cfg.source.wall_margin_m)) continue;
      s.room.size_m = L;
      s.t60_s = draw(rng, cfg.room.t60_s);
      s.anechoic = rng.uniform() < cfg.room.anechoic_prob;
      const auto& grid = cfg.test_grid;
      const size_t n_snr = grid.snr_db.size(), n_t60 = grid.t60_s.size();
      const size_t cell = grid.enabled ? size_t(index % (n_snr * n_t60 * grid.noise_types.size())) : 0;
      if (grid.enabled) {
        s.t60_s = grid.t60_s[(cell / n_snr) % n_t60];
        s.anechoic = s.t60_s == 0.0;
      }
      const double beta =
          s.anechoic ? 0.0 : reflection_coefficient(L, s.t60_s, absorption_model(cfg), cfg.speed_of_sound_m_s);
      for (double& b : s.room.beta) b = beta;
      s.listener_m = lis;
      s.head_yaw_deg = yaw;
      s.source_m = src;
      s.azimuth_deg = az, s.elevation_deg = el, s.distance_m = d;
      s.hrtf_index = n_hrtf > 1 ? rng.uniform_int(0, n_hrtf - 1) : 0;
      const int n_scales = int(cfg.hrtf.head_scales.size());
      s.head_scale_index = n_scales > 1 ? rng.uniform_int(0, n_scales - 1) : 0;
      s.head_scale = cfg.hrtf.head_scales[size_t(s.head_scale_index)];
      double wsum = 0;
      for (const auto& kv : cfg.noise.type_weights) wsum += kv.second;
      double u = rng.uniform() * wsum;
      s.noise_type = NoiseType::diffuse;
      for (const auto& kv : cfg.noise.type_weights) {
        if (kv.second <= 0) continue;
        s.noise_type = kv.first == "point" ? NoiseType::point : kv.first == "babble" ? NoiseType::babble : NoiseType::diffuse;
        if ((u -= kv.second) < 0) break;
      }
      s.snr_db = draw(rng, cfg.noise.snr_db);
      if (grid.enabled) {
        s.snr_db = grid.snr_db[cell % n_snr];
        const std::string& t = grid.noise_types[cell / (n_snr * n_t60)];
        s.noise_type = t == "point" ? NoiseType::point : t == "babble" ? NoiseType::babble : NoiseType::diffuse;
      }
      s.babble_talkers = rng.uniform_int(int(cfg.noise.babble_talkers.lo), int(cfg.noise.babble_talkers.hi));
      // Point noise: anywhere in the room away from the walls and at least 0.5 m from the head.
      const double nm = std::min({cfg.source.wall_margin_m, 0.49 * L.x, 0.49 * L.y, 0.49 * L.z});
      s.noise_source_m = {L.x / 2, L.y / 2, L.z / 2};
      for (int j = 0; j < kPlacementTries; ++j) {
        Vec3 p{rng.uniform(nm, L.x - nm), rng.uniform(nm, L.y - nm), rng.uniform(nm, L.z - nm)};
        if (std::hypot(p.x - lis.x, p.y - lis.y, p.z - lis.z) >= 0.5) {
          s.noise_source_m = p;
          break;
        }
      }
      Rng augment(cfg.seed, index, Stream::augment);
      s.speech_tilt_db_per_octave = draw(augment, cfg.speech.tilt_db_per_octave);
      return s;
    }
  }
  throw InputError("cannot place listener and source in any sampled room: source.distance_m " +
                   range_text(cfg.source.distance_m) + " with source.wall_margin_m " +
                   std::to_string(cfg.source.wall_margin_m) + " does not fit rooms of room.length_m " +
                   range_text(cfg.room.length_m) + ", room.width_m " + range_text(cfg.room.width_m) +
                   ", room.height_m " + range_text(cfg.room.height_m));
}

}  // namespace bsim
