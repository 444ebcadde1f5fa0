// STFT and the teacher's spatial features computed from a clean binaural pair.
//
// STFT (documented so that numpy/scipy can reproduce it exactly): frame t covers samples
// [t*hop, t*hop + win_length), no centring or padding, n_frames = 1 + (T - win_length) / hop; the frame
// is multiplied by a periodic Hann window of win_length, zero-padded to n_fft at the end, and transformed
// (numpy.fft.rfft, unnormalised): X[t][k], k = 0..n_fft/2.
//
// Teacher features, [feature][frame], float32:
//   gcc_phat: r[tau] = irfft(G)[tau], G = X_L conj(X_R) / max(|X_L conj(X_R)|, eps), tau = -L..L samples.
//             A source on the left (left ear leads by d samples) peaks at tau = -d.
//   ipd:      Re G for k = 0..n_fft/2, then Im G for the same bins, G as for gcc_phat: cos and sin of the
//             interaural phase where the cross-spectrum carries energy (|X_L conj X_R| >= eps), shrinking to 0
//             where it does not (a bin without energy has no phase: an arbitrary unit vector there would be
//             rounding noise, different on every device). Before 2026-11-26: cos and sin of the phase in every
//             bin (1, 0 for an exactly zero product).
//   ild:      10 log10((|X_L|^2 + eps) / (|X_R|^2 + eps)) dB per bin.
//   ipd_ild:  ipd rows then ild rows.
// eps = 1e-10 * (mean |X|^2 over both ears and all frames and bins) + 1e-30, so silence gives finite values.
#pragma once
#include <complex>
#include <string>
#include <vector>

#include "io/config.h"

namespace bsim {

enum class TeacherKind { gcc_phat, ipd, ild, ipd_ild };
TeacherKind teacher_kind(const std::string& name);

struct FeatureShape {
  int n_features = 0, n_frames = 0;
};
FeatureShape teacher_shape(const FeatureConfig& cfg, int n_samples);

// The STFT's window: periodic Hann of cfg.win_length (the GPU kernels upload this one too).
std::vector<float> stft_window(const FeatureConfig& cfg);

// STFT of x (n samples) -> [frame][bin] complex.
std::vector<std::complex<float>> stft(const float* x, int n, const FeatureConfig& cfg, int& n_frames);

// Teacher features of a binaural pair into out ([feature][frame], resized).
void teacher_features(const float* left, const float* right, int n, const FeatureConfig& cfg,
                      std::vector<float>& out);

}  // namespace bsim
