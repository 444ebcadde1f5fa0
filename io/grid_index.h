// Nearest point of a dense direction grid (azimuth [0, 360) in n_az steps, elevation [-90, 90] in n_el
// points): one function for the CPU (HrirGrid::index) and the CUDA kernels, so both pick the same HRIR.
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define BSIM_GRID_HD __host__ __device__
#else
#define BSIM_GRID_HD
#endif

namespace bsim {

BSIM_GRID_HD inline int grid_direction_index(double azimuth_deg, double elevation_deg, int n_az, int n_el,
                                             double az_step_deg, double el_step_deg) {
  double az = fmod(azimuth_deg, 360.0);
  if (az < 0) az += 360.0;
  const int ia = int(llround(az / az_step_deg)) % n_az;
  const double el = elevation_deg < -90.0 ? -90.0 : (elevation_deg > 90.0 ? 90.0 : elevation_deg);
  int ie = int(llround((el + 90.0) / el_step_deg));
  ie = ie < 0 ? 0 : (ie > n_el - 1 ? n_el - 1 : ie);
  return ie * n_az + ia;
}

}  // namespace bsim
