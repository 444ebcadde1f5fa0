// GPU rendering of the early part of many BRIRs in one launch: every image source up to each room's
// transition distance adds the HRIR of its arrival direction at its fractional delay (the same physics as
// sim/brir.cpp's early part, which is the reference in tests/test_gpu.cpp). Host header: no CUDA types.
#pragma once
#include <memory>
#include <vector>

#include "io/hrtf.h"

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
};

class EarlyBrirRenderer {
 public:
  // Uploads the HRIR grid once and allocates every buffer for up to max_rooms rooms of `length` samples.
  // Throws RuntimeError when no CUDA device is usable.
  EarlyBrirRenderer(const HrirGrid& grid, int max_rooms, int length, int max_images_per_room, int frac_half_width,
                    double c_m_s);
  ~EarlyBrirRenderer();
  EarlyBrirRenderer(const EarlyBrirRenderer&) = delete;
  EarlyBrirRenderer& operator=(const EarlyBrirRenderer&) = delete;

  // Renders rooms.size() <= max_rooms early BRIRs into out [room][ear][length] (host memory) and the image
  // count of each room. Synchronises with the device before returning.
  void render(const std::vector<RoomGeometry>& rooms, std::vector<float>& out, std::vector<int>& images_per_room);

  int length() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when a CUDA device can be used by this process (never throws).
bool device_available();

}  // namespace bsim::cuda
