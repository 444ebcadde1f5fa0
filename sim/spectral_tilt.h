// Spectral tilt of the dry target speech (config speech.tilt_db_per_octave): a data augmentation against the
// spectral balance of one corpus. Voices and recording chains differ in how much energy they put above a few
// kHz (the embedded Dutch recordings are 10 dB duller than the Czech ones: docs/results/speech-brightness-cpu),
// and networks trained on one kind of voice are worst on the other. Each example draws a tilt in dB per octave
// and its speech spectrum is weighted by it inside the FFT convolution, so the reverberant and the clean
// renderings (and the teacher) get the same tilted voice while the noise keeps its own spectrum.
//
// The weight is real and positive (zero phase: the voice's timing, and with it every interaural cue, is
// untouched): 0 dB at 1 kHz, tilt dB more per octave above, less below, constant below 125 Hz so that DC and
// the lowest bins do not run off to 0 or infinity. The CPU (sim/fft.cpp) and the GPU (kernels/pipeline_gpu.cu)
// evaluate this one function per FFT bin.
#pragma once
#include <cmath>

#include "sim/host_device.h"

namespace bsim {

constexpr float kTiltReferenceHz = 1000.0f;
constexpr float kTiltFloorHz = 125.0f;

// Gain of bin k of an n-point real FFT at fs_hz; exactly 1 for no tilt.
BSIM_HD inline float spectral_tilt_gain(float tilt_db_per_octave, int k, int n, float fs_hz) {
  if (tilt_db_per_octave == 0.0f) return 1.0f;
  const float f = fmaxf(float(k) * fs_hz / float(n), kTiltFloorHz);
  // 10^(tilt log2(f / f_ref) / 20) = 2^(tilt log2(10) / 20 * log2(f / f_ref))
  return exp2f(tilt_db_per_octave * 0.166096404744f * log2f(f / kTiltReferenceHz));
}

// What convolve_many applies to its input's spectrum (none by default).
struct SpectralTilt {
  float db_per_octave = 0.0f;
  float fs_hz = 0.0f;
};

}  // namespace bsim
