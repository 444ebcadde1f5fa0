// Shoebox rooms and the image-source method (Allen & Berkley 1979).
//
// Conventions (the same as pyroomacoustics, unlike gpuRIR's 1/r): the room spans [0, L] on each axis;
// an image at distance d with reflection orders n_w on walls w contributes gain prod_w beta_w^n_w / (4 pi d)
// at delay d / c. beta = sqrt(1 - alpha) is the (positive, frequency-flat) pressure reflection coefficient
// from the energy absorption alpha that the requested T60 needs (Eyring or Sabine, uniform on all walls).
#pragma once
#include <vector>

namespace bsim {

struct Vec3 {
  double x = 0, y = 0, z = 0;
};

struct Shoebox {
  Vec3 size_m;
  double beta[6] = {1, 1, 1, 1, 1, 1};  // walls x=0, x=L, y=0, y=L, z=0, z=L
};

enum class AbsorptionModel { eyring, sabine };

// Uniform wall reflection coefficient for a target T60. Eyring's formula makes the image-source energy
// decay itself follow the T60 (mean free path 4V/S), Sabine's matches pyroomacoustics' inverse_sabine.
// Throws InputError when the T60 is too short for the room (absorption would exceed 1).
double reflection_coefficient(const Vec3& size_m, double t60_s, AbsorptionModel model,
                              double c_m_s = 343.0);

struct ImageSource {
  Vec3 pos_m;
  double gain = 0;    // prod beta / (4 pi d)
  double delay_s = 0;
  int order = 0;      // total number of reflections
};

// Which images to keep: total order <= max_order (when >= 0) and distance <= max_distance_m.
struct ImageLimit {
  int max_order = -1;
  double max_distance_m = 1e30;
};

// Appends all images of `src` within the limit, seen from `rcv`, to `out` (cleared first).
void enumerate_images(const Shoebox& room, const Vec3& src, const Vec3& rcv, const ImageLimit& limit,
                      double c_m_s, std::vector<ImageSource>& out);

// Throws InputError with `what` in the message when p is not strictly inside the room.
void check_inside(const Shoebox& room, const Vec3& p, const char* what);

}  // namespace bsim
