// GPU rendering of many BRIRs in one launch: every image source up to each room's transition distance adds
// the HRIR of its arrival direction at its fractional delay, and (optionally) the late tail is added as in
// sim/brir.cpp: diffuse-field noise (coherence and spectra of the HRTF set) split into octave bands with
// per-band exponential decay, generated from counter-based random numbers in registers and cuFFT.
// sim/brir.cpp is the reference (tests/brir_check.h, run on the device by tests/test_gpu.cpp and with the kernels
// on the CPU by tests/test_kernel_emulation.cpp): the early part sample by sample, the tail by its
// statistics (decay per band, level). Host header: no CUDA types.
#pragma once
#include <memory>
#include <vector>

#include "io/hrtf.h"
#include "sim/brir.h"

namespace bsim::cuda {

// One room of a batch, in the units and conventions of sim/room.h (plain floats so that host and device
// share the layout).
struct RoomGeometry {
  float size_m[3];
  float beta[6];        // walls x=0, x=L, y=0, y=L, z=0, z=L
  float source_m[3];
  float listener_m[3];
  float yaw_rad;        // head yaw, CCW from +x
  float max_distance_m; // images farther than this are left to the late tail (transition time x c)
  float t60_s;          // tail decay (band ratios apply on top); <= 0: no tail for this room (anechoic)
  float transition_s;   // where the tail fades in (normally max_distance_m / c)
  unsigned long long tail_seed;  // the tail's random numbers are a pure function of this seed
  int grid_id;          // which HRTF set (index into the grids given at construction)
  int n_samples;        // the tail stops here, as the CPU's BRIR of this room ends (<= 0: the renderer's length)
};

class BrirRenderer {
 public:
  // Uploads the HRIR grid (and the diffuse field, when a tail is wanted) once and allocates every buffer for
  // up to max_rooms rooms of `length` samples. Throws RuntimeError when no CUDA device is usable.
  BrirRenderer(const HrirGrid& grid, int max_rooms, int length, int max_images_per_room, int frac_half_width,
               double c_m_s, const DiffuseField* diffuse = nullptr,
               const std::vector<double>& band_t60_ratio = std::vector<double>(kTailBands, 1.0));
  // Several HRTF sets (RoomGeometry::grid_id picks one); all at the same sample rate. `diffuse` is empty
  // (no tail) or one field per grid.
  BrirRenderer(const std::vector<const HrirGrid*>& grids, int max_rooms, int length, int max_images_per_room,
               int frac_half_width, double c_m_s, const std::vector<const DiffuseField*>& diffuse,
               const std::vector<double>& band_t60_ratio);
  ~BrirRenderer();
  BrirRenderer(const BrirRenderer&) = delete;
  BrirRenderer& operator=(const BrirRenderer&) = delete;

  // Renders rooms.size() <= max_rooms BRIRs into out [room][ear][length] (host memory) and the image count
  // of each room; with late_tail (needs the diffuse field) the tail is added. Synchronises before returning.
  void render(const std::vector<RoomGeometry>& rooms, std::vector<float>& out, std::vector<int>& images_per_room,
              bool late_tail = false);

  // The same work left on the device: returns [room][ear][length] in device memory (valid until the next call).
  // Synchronises. Used by the benchmark to separate rendering from the copy to the host.
  const float* render_device(const std::vector<RoomGeometry>& rooms, bool late_tail = false);

  // Device-side use (the pipeline): `device_rooms` already on the device; responses go to rows of `stride`
  // floats: out + (room * 2 + ear) * stride, and the direct path alone of rooms < n_direct to
  // direct + (room * 2 + ear) * stride (direct may be null). Samples [0, length) of each row are
  // overwritten, the rest of the row is left alone. Image counts go to device_counts[room]. Everything is
  // enqueued on `stream` (a cudaStream_t); nothing synchronises.
  void enqueue_device(const RoomGeometry* device_rooms, int n_rooms, bool late_tail, float* out, float* direct,
                      int n_direct, long long stride, int* device_counts, void* stream);

  int length() const;
  int capacity() const;  // images per room

 private:
  void enqueue(const std::vector<RoomGeometry>& rooms, bool late_tail);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when a CUDA device can be used by this process (never throws).
bool device_available();

}  // namespace bsim::cuda
