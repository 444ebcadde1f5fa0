// What the host prepares for the GPU pipeline's kernels from an example's plan: each emitter's room as the
// BRIR kernels take it, and how much of its response the convolution must read. Plain C++ (kernels/pipeline_gpu.cu
// uses it; tests/test_kernel_emulation.cpp checks it against the CPU renderer).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "io/config.h"
#include "kernels/brir_gpu.h"
#include "sim/brir.h"
#include "sim/rng.h"
#include "sim/scene.h"

namespace bsim::cuda {

// Samples of the emitter's response that the CPU renders (brir_length_samples, sim/brir.h, as render_brir uses
// it), from above: the farthest image taken at the distance limit, one sample more for the float room parameters. The GPU renders the room's tail
// to here (RoomGeometry::n_samples) and the partitioned convolution reads no further; the pipeline's rows are as
// long as the batch's longest response.
inline int response_samples(const RoomGeometry& g, const Config& cfg, int n_taps) {
  return brir_length_samples(double(g.max_distance_m) / cfg.speed_of_sound_m_s, g.t60_s, cfg.render.band_t60_ratio,
                             cfg.sample_rate_hz, n_taps, cfg.render.frac_delay_half_width) +
         1;
}

// Samples of a target's direct-path response: its delay, the HRIR and the delay kernel, and 64 of margin (the
// partitioned convolution reads the direct-path rows no further).
inline int direct_path_samples(double delay_s, const Config& cfg, int n_taps) {
  return int(std::ceil(delay_s * cfg.sample_rate_hz)) + n_taps + 2 * cfg.render.frac_delay_half_width + 64;
}

// The room of an emitter at p in scene s, with the tail's seed of substream tail_sub (0: the target): images to
// the transition distance and the late tail after it, or for an anechoic scene the direct path alone; rendered to
// where the CPU's BRIR ends (n_taps: the scene's HRIR grid's).
inline RoomGeometry room_geometry(const Config& cfg, const Scene& s, const Vec3& p, uint64_t tail_sub, int n_taps) {
  RoomGeometry g{};
  const Vec3& L = s.room.size_m;
  g.size_m[0] = float(L.x), g.size_m[1] = float(L.y), g.size_m[2] = float(L.z);
  for (int w = 0; w < 6; ++w) g.beta[w] = float(s.room.beta[w]);
  g.source_m[0] = float(p.x), g.source_m[1] = float(p.y), g.source_m[2] = float(p.z);
  g.listener_m[0] = float(s.listener_m.x), g.listener_m[1] = float(s.listener_m.y), g.listener_m[2] = float(s.listener_m.z);
  g.yaw_rad = float(s.head_yaw_deg * M_PI / 180.0);
  const double c = cfg.speed_of_sound_m_s;
  const double transition = cfg.render.transition_s > 0 ? cfg.render.transition_s
                                                         : auto_transition_s(L.x * L.y * L.z, cfg.sample_rate_hz, c);
  g.transition_s = float(transition);
  if (s.anechoic) {  // the direct path alone: images no farther than it, no tail
    const double d = std::hypot(p.x - s.listener_m.x, p.y - s.listener_m.y, p.z - s.listener_m.z);
    g.max_distance_m = float(d * (1 + 1e-6) + 1e-4);
    g.t60_s = 0;
  } else {
    g.max_distance_m = float(transition * c);
    g.t60_s = float(s.t60_s);
  }
  g.tail_seed = Rng(cfg.seed, s.index, ::bsim::Stream::tail, tail_sub).next();
  g.grid_id = hrir_grid_index(cfg, s);
  g.n_samples = response_samples(g, cfg, n_taps);
  return g;
}

}  // namespace bsim::cuda
