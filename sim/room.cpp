// Image-source enumeration for shoebox rooms.
#include "sim/room.h"

#include <cmath>
#include <string>

#include "io/error.h"

namespace bsim {

double reflection_coefficient(const Vec3& L, double t60_s, AbsorptionModel model, double c) {
  const double V = L.x * L.y * L.z;
  const double S = 2.0 * (L.x * L.y + L.x * L.z + L.y * L.z);
  const double k = 24.0 * std::log(10.0) / c;  // 0.161 s/m at c = 343 m/s
  double alpha = (model == AbsorptionModel::sabine) ? k * V / (S * t60_s) : 1.0 - std::exp(-k * V / (S * t60_s));
  if (!(alpha > 0) || alpha >= 1.0)
    throw InputError("T60 " + std::to_string(t60_s) + " s is too short for a " + std::to_string(L.x) + " x " +
                     std::to_string(L.y) + " x " + std::to_string(L.z) +
                     " m room (wall absorption would reach 1): raise room.t60_s or use eyring");
  return std::sqrt(1.0 - alpha);
}

void check_inside(const Shoebox& room, const Vec3& p, const char* what) {
  const auto& L = room.size_m;
  if (!(p.x > 0 && p.x < L.x && p.y > 0 && p.y < L.y && p.z > 0 && p.z < L.z))
    throw InputError(std::string(what) + " position (" + std::to_string(p.x) + ", " + std::to_string(p.y) + ", " +
                     std::to_string(p.z) + ") m is outside the " + std::to_string(L.x) + " x " +
                     std::to_string(L.y) + " x " + std::to_string(L.z) + " m room");
}

void enumerate_images(const Shoebox& room, const Vec3& src, const Vec3& rcv, const ImageLimit& limit, double c,
                      std::vector<ImageSource>& out) {
  out.clear();
  const double L[3] = {room.size_m.x, room.size_m.y, room.size_m.z};
  const double s[3] = {src.x, src.y, src.z};
  const double r[3] = {rcv.x, rcv.y, rcv.z};
  // Bound the lattice index per axis by the order limit and by the distance limit.
  int nmax[3];
  for (int a = 0; a < 3; ++a) {
    int by_dist = int(std::ceil(std::min(limit.max_distance_m, 1e6) / (2.0 * L[a]))) + 1;
    nmax[a] = limit.max_order >= 0 ? std::min(by_dist, (limit.max_order + 1) / 2 + 1) : by_dist;
  }
  const double max_d2 = limit.max_distance_m * limit.max_distance_m;
  for (int nx = -nmax[0]; nx <= nmax[0]; ++nx)
    for (int qx = 0; qx < 2; ++qx) {
      const int ox0 = std::abs(nx - qx), ox1 = std::abs(nx);
      const double px = (1 - 2 * qx) * s[0] + 2.0 * nx * L[0], dx = px - r[0];
      for (int ny = -nmax[1]; ny <= nmax[1]; ++ny)
        for (int qy = 0; qy < 2; ++qy) {
          const int oy0 = std::abs(ny - qy), oy1 = std::abs(ny);
          const double py = (1 - 2 * qy) * s[1] + 2.0 * ny * L[1], dy = py - r[1];
          const double dxy2 = dx * dx + dy * dy;
          if (dxy2 > max_d2) continue;
          for (int nz = -nmax[2]; nz <= nmax[2]; ++nz)
            for (int qz = 0; qz < 2; ++qz) {
              const int oz0 = std::abs(nz - qz), oz1 = std::abs(nz);
              const int order = ox0 + ox1 + oy0 + oy1 + oz0 + oz1;
              if (limit.max_order >= 0 && order > limit.max_order) continue;
              const double pz = (1 - 2 * qz) * s[2] + 2.0 * nz * L[2], dz = pz - r[2];
              const double d2 = dxy2 + dz * dz;
              if (d2 > max_d2) continue;
              const double d = std::sqrt(d2);
              const double g = std::pow(room.beta[0], ox0) * std::pow(room.beta[1], ox1) *
                               std::pow(room.beta[2], oy0) * std::pow(room.beta[3], oy1) *
                               std::pow(room.beta[4], oz0) * std::pow(room.beta[5], oz1);
              out.push_back({{px, py, pz}, g / (4.0 * M_PI * std::max(d, 1e-3)), d / c, order});
            }
        }
    }
}

}  // namespace bsim
