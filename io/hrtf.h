// SOFA HRTF sets (libmysofa) turned into a dense direction grid of HRIRs at the simulation rate, so that
// renderers look up any direction with a single fetch (CPU now, a device upload later).
//
// Coordinates (head frame, SOFA's own): x forward through the nose, y out of the left ear, z up.
// Azimuth is counter-clockwise from the front seen from above (+90 deg = left), elevation upwards.
// Receiver 0 of the grid is always the left ear, whatever order the file stores its receivers in.
#pragma once
#include <string>
#include <vector>

namespace bsim {

struct HrirGrid {
  std::string path;
  double fs_hz = 0;
  int n_taps = 0;                 // per ear
  int n_az = 0, n_el = 0;         // azimuth [0, 360) in n_az steps; elevation [-90, 90] in n_el points
  double az_step_deg = 0, el_step_deg = 0;
  int n_measured = 0;             // M of the SOFA file
  int file_taps = 0;              // N of the SOFA file
  double file_fs_hz = 0;
  double el_min_measured_deg = 0, el_max_measured_deg = 0;
  std::vector<float> ir;          // [el][az][ear][tap]

  int index(double azimuth_deg, double elevation_deg) const;  // nearest grid point
  const float* at(int idx, int ear) const { return ir.data() + (static_cast<size_t>(idx) * 2 + ear) * n_taps; }
  double grid_azimuth_deg(int idx) const { return (idx % n_az) * az_step_deg; }
  double grid_elevation_deg(int idx) const { return -90.0 + (idx / n_az) * el_step_deg; }
};

// Loads a SimpleFreeFieldHRIR SOFA file, resamples it to fs_hz (libmysofa), normalises its loudness
// (libmysofa: frontal direction at unit loudness, so that subjects mix at equal level) and interpolates
// the grid. Interpolation treats delay and shape separately: each measured HRIR's onset is removed,
// the three nearest measurements are blended (inverse angular distance), and the blended onset is put
// back as a fractional delay. Directions outside the measured elevation range take the nearest measured.
// Throws InputError naming the file when it is missing, corrupt or not an HRIR set; a missing file's message
// points at `origin`, the setting or flag the path came from.
HrirGrid load_hrir_grid(const std::string& sofa_path, double fs_hz, double az_step_deg, double el_step_deg,
                        const std::string& origin = "hrtf.sofa");

// The same head scaled in size by `scale` (a rigid scatterer scaled by s has H_s(f) = H(s f): acoustic
// similarity), so h_s(t) = h(t / s) / s: every IR stretched in time by s (band-limited, windowed-sinc
// resampling, low-passed at fs/2 when s < 1). Interaural delays scale by s, spectral features move down in
// frequency by 1/s. Training on a range of sizes is augmentation towards heads never measured (hrtf.head_scales).
// scale 1 returns the grid unchanged; scale must lie in [0.5, 2].
HrirGrid scale_head_size(const HrirGrid& grid, double scale);

}  // namespace bsim
