// CPU STFT and GCC-PHAT / IPD / ILD teacher features (the reference for the CUDA path).
#include "sim/features.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "sim/fft.h"

namespace bsim {

namespace {

// |g| as glibc's hypotf computes it (the squares in double, one sqrt, rounded to float: the same bits for
// finite values), without the call: std::abs of a complex<float> was ~60 % of the GCC-PHAT teacher's time.
inline float magnitude(std::complex<float> g) {
  return float(std::sqrt(double(g.real()) * g.real() + double(g.imag()) * g.imag()));
}

}  // namespace

TeacherKind teacher_kind(const std::string& name) {
  if (name == "gcc_phat") return TeacherKind::gcc_phat;
  if (name == "ipd") return TeacherKind::ipd;
  if (name == "ild") return TeacherKind::ild;
  if (name == "ipd_ild") return TeacherKind::ipd_ild;
  throw InputError("unknown teacher feature '" + name + "' (use gcc_phat, ipd, ild or ipd_ild)");
}

FeatureShape teacher_shape(const FeatureConfig& cfg, int n) {
  FeatureShape s;
  s.n_frames = n >= cfg.win_length ? 1 + (n - cfg.win_length) / cfg.hop_length : 0;
  const int bins = cfg.n_fft / 2 + 1;
  switch (teacher_kind(cfg.teacher)) {
    case TeacherKind::gcc_phat: s.n_features = 2 * cfg.gcc_max_lag + 1; break;
    case TeacherKind::ipd: s.n_features = 2 * bins; break;
    case TeacherKind::ild: s.n_features = bins; break;
    case TeacherKind::ipd_ild: s.n_features = 3 * bins; break;
  }
  return s;
}

std::vector<float> stft_window(const FeatureConfig& cfg) {
  std::vector<float> win(static_cast<size_t>(cfg.win_length));
  for (int i = 0; i < cfg.win_length; ++i) win[size_t(i)] = float(0.5 - 0.5 * std::cos(2.0 * M_PI * i / cfg.win_length));
  return win;
}

std::vector<std::complex<float>> stft(const float* x, int n, const FeatureConfig& cfg, int& n_frames) {
  n_frames = n >= cfg.win_length ? 1 + (n - cfg.win_length) / cfg.hop_length : 0;
  const int bins = cfg.n_fft / 2 + 1;
  const std::vector<float> win = stft_window(cfg);
  RealFft fft(cfg.n_fft);
  FloatVec frame(static_cast<size_t>(cfg.n_fft), 0.0f);
  ComplexVec spec(static_cast<size_t>(bins));
  std::vector<std::complex<float>> out(static_cast<size_t>(n_frames) * bins);
  for (int t = 0; t < n_frames; ++t) {
    const float* src = x + size_t(t) * cfg.hop_length;
    for (int i = 0; i < cfg.win_length; ++i) frame[i] = src[i] * win[i];
    fft.forward(frame.data(), spec.data());
    std::copy(spec.begin(), spec.end(), out.begin() + size_t(t) * bins);
  }
  return out;
}

void teacher_features(const float* left, const float* right, int n, const FeatureConfig& cfg,
                      std::vector<float>& out) {
  const TeacherKind kind = teacher_kind(cfg.teacher);
  const FeatureShape shape = teacher_shape(cfg, n);
  int frames = 0;
  const auto XL = stft(left, n, cfg, frames);
  const auto XR = stft(right, n, cfg, frames);
  const int bins = cfg.n_fft / 2 + 1, T = frames;
  out.assign(static_cast<size_t>(shape.n_features) * T, 0.0f);
  double mean_pow = 0;
  for (size_t i = 0; i < XL.size(); ++i) mean_pow += std::norm(XL[i]) + std::norm(XR[i]);
  mean_pow /= std::max<size_t>(1, 2 * XL.size());
  const double eps = 1e-10 * mean_pow + 1e-30;

  if (kind == TeacherKind::gcc_phat) {
    RealFft fft(cfg.n_fft);
    ComplexVec G(static_cast<size_t>(bins));
    FloatVec r(static_cast<size_t>(cfg.n_fft));
    const int L = cfg.gcc_max_lag;
    for (int t = 0; t < T; ++t) {
      for (int k = 0; k < bins; ++k) {
        const std::complex<float> g = XL[size_t(t) * bins + k] * std::conj(XR[size_t(t) * bins + k]);
        G[k] = g / float(std::max(double(magnitude(g)), eps));
      }
      fft.inverse(G.data(), r.data());
      for (int lag = -L; lag <= L; ++lag)
        out[size_t(lag + L) * T + t] = r[size_t((lag + cfg.n_fft) % cfg.n_fft)] / float(cfg.n_fft);
    }
    return;
  }
  const bool ipd = kind == TeacherKind::ipd || kind == TeacherKind::ipd_ild;
  const bool ild = kind == TeacherKind::ild || kind == TeacherKind::ipd_ild;
  const int ild_row0 = ipd ? 2 * bins : 0;
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < bins; ++k) {
      const auto l = XL[size_t(t) * bins + k], r = XR[size_t(t) * bins + k];
      if (ipd) {  // the PHAT-weighted cross-spectrum, as gcc_phat's G
        const std::complex<double> g = std::complex<double>(l) * std::conj(std::complex<double>(r));
        const std::complex<double> unit = g / std::max(std::sqrt(std::norm(g)), eps);  // not std::abs: hypot's care costs
        out[size_t(k) * T + t] = float(unit.real());
        out[size_t(bins + k) * T + t] = float(unit.imag());
      }
      if (ild)
        out[size_t(ild_row0 + k) * T + t] = float(10.0 * std::log10((std::norm(l) + eps) / (std::norm(r) + eps)));
    }
}

}  // namespace bsim
