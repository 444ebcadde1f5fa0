// GCC-PHAT, SRP-PHAT and MUSIC with HRTF steering.
#include "doa/classic.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "sim/features.h"
#include "sim/fft.h"

namespace bsim {
namespace {
constexpr double kLoHz = 200.0, kHiHz = 7000.0;  // where speech has energy and HRTFs are reliable
constexpr int kLagUpsample = 8;                   // GCC lag resolution: 1/8 sample

// Peak lag (samples, + = left leads, i.e. the right ear lags) of a PHAT cross-spectrum G = X_L conj(X_R),
// found on a kLagUpsample-times finer lag grid within +-max_lag.
double phat_peak_lag(const std::vector<std::complex<float>>& G, int n_fft, double max_lag) {
  const int n = n_fft * kLagUpsample;
  RealFft fft(n);
  ComplexVec spec(static_cast<size_t>(fft.bins()), {0.0f, 0.0f});
  std::copy(G.begin(), G.end(), spec.begin());
  FloatVec r(static_cast<size_t>(n));
  fft.inverse(spec.data(), r.data());
  // irfft(X_L conj X_R)[tau] peaks at tau = -d when the left ear leads by d.
  double best = -1e30, best_lag = 0;
  const int L = int(std::ceil(max_lag * kLagUpsample));
  for (int k = -L; k <= L; ++k) {
    const float v = r[size_t((k + n) % n)];
    if (v > best) best = v, best_lag = -double(k) / kLagUpsample;
  }
  return best_lag;
}
}  // namespace

ClassicMethod classic_method(const std::string& name) {
  if (name == "gcc_phat") return ClassicMethod::gcc_phat;
  if (name == "srp_phat") return ClassicMethod::srp_phat;
  if (name == "music") return ClassicMethod::music;
  if (name == "gcc_phat_frames") return ClassicMethod::gcc_phat_frames;
  if (name == "srp_phat_frames") return ClassicMethod::srp_phat_frames;
  throw InputError("unknown DoA method '" + name + "' (use gcc_phat, srp_phat, music, gcc_phat_frames or srp_phat_frames)");
}
const char* classic_method_name(ClassicMethod m) {
  switch (m) {
    case ClassicMethod::gcc_phat: return "gcc_phat";
    case ClassicMethod::srp_phat: return "srp_phat";
    case ClassicMethod::music: return "music";
    case ClassicMethod::gcc_phat_frames: return "gcc_phat_frames";
    case ClassicMethod::srp_phat_frames: return "srp_phat_frames";
  }
  return "?";
}

ClassicDoa::ClassicDoa(const HrirGrid& grid, const FeatureConfig& stft, bool full, double step)
    : stft_(stft), fs_hz_(grid.fs_hz), bins_(stft.n_fft / 2 + 1) {
  if (grid.n_taps > stft.n_fft)
    throw InputError("HRIRs of '" + grid.path + "' (" + std::to_string(grid.n_taps) + " taps) are longer than features.n_fft");
  bin_lo_ = std::max(1, int(std::ceil(kLoHz * stft.n_fft / fs_hz_)));
  bin_hi_ = std::min(bins_ - 1, int(std::floor(kHiHz * stft.n_fft / fs_hz_)));
  for (double a = full ? -180.0 : -90.0; full ? a < 180.0 - 1e-9 : a <= 90.0 + 1e-9; a += step) azimuth_deg_.push_back(a);
  RealFft fft(stft.n_fft);
  FloatVec buf(static_cast<size_t>(stft.n_fft));
  ComplexVec spec(static_cast<size_t>(bins_));
  hl_.resize(azimuth_deg_.size() * bins_);
  hr_.resize(azimuth_deg_.size() * bins_);
  for (size_t c = 0; c < azimuth_deg_.size(); ++c) {
    const int idx = grid.index(azimuth_deg_[c], 0.0);
    for (int ear = 0; ear < 2; ++ear) {
      std::fill(buf.begin(), buf.end(), 0.0f);
      std::copy(grid.at(idx, ear), grid.at(idx, ear) + grid.n_taps, buf.begin());
      fft.forward(buf.data(), spec.data());
      std::copy(spec.begin(), spec.end(), (ear == 0 ? hl_ : hr_).begin() + long(c * bins_));
    }
    // The set's own ITD for this direction: the GCC-PHAT peak of its HRIR pair in the analysis band.
    std::vector<std::complex<float>> G(static_cast<size_t>(bins_), {0.0f, 0.0f});
    for (int k = bin_lo_; k <= bin_hi_; ++k) {
      const auto g = hl_[c * bins_ + k] * std::conj(hr_[c * bins_ + k]);
      G[size_t(k)] = std::abs(g) > 0 ? g / std::abs(g) : 0.0f;
    }
    itd_samples_.push_back(phat_peak_lag(G, stft.n_fft, 0.0015 * fs_hz_));
  }
}

int ClassicDoa::max_lag_eighths() const { return int(std::ceil(0.0015 * fs_hz_ * kLagUpsample)); }

ClassicDoa::Spectra ClassicDoa::spectra(const float* left, const float* right, int n) const {
  Spectra s;
  s.XL = stft(left, n, stft_, s.frames);
  s.XR = stft(right, n, stft_, s.frames);
  if (s.frames == 0) throw InputError("signal shorter than one STFT frame");
  return s;
}

std::vector<double> ClassicDoa::scores(ClassicMethod m, const float* left, const float* right, int n) const {
  Spectra s = spectra(left, right, n);
  return scores(m, s);
}

std::vector<double> ClassicDoa::scores(ClassicMethod m, Spectra& s) const {
  const auto phat = [&](bool per_frame) -> const std::vector<std::complex<float>>& {
    auto& G = s.phat[per_frame ? 1 : 0];
    if (G.empty()) G = phat_spectrum(s.XL, s.XR, s.frames, per_frame);
    return G;
  };
  switch (m) {
    case ClassicMethod::gcc_phat: return gcc_phat(phat(false));
    case ClassicMethod::srp_phat: return srp_phat(phat(false));
    case ClassicMethod::music: return music(s.XL, s.XR, s.frames);
    case ClassicMethod::gcc_phat_frames: return gcc_phat(phat(true));
    case ClassicMethod::srp_phat_frames: return srp_phat(phat(true));
  }
  return {};
}

namespace {
// The first maximum: ties (front/back on a full grid) go to the first candidate.
double first_best(const std::vector<double>& azimuths, const std::vector<double>& s) {
  return azimuths[size_t(std::max_element(s.begin(), s.end()) - s.begin())];
}
}  // namespace

double ClassicDoa::estimate(ClassicMethod m, const float* left, const float* right, int n) const {
  return first_best(azimuth_deg_, scores(m, left, right, n));
}

std::vector<double> ClassicDoa::estimate(const std::vector<ClassicMethod>& methods, const float* left,
                                         const float* right, int n) const {
  Spectra s = spectra(left, right, n);
  std::vector<double> out;
  for (ClassicMethod m : methods) out.push_back(first_best(azimuth_deg_, scores(m, s)));
  return out;
}

std::vector<std::complex<float>> ClassicDoa::phat_spectrum(const std::vector<std::complex<float>>& XL,
                                                           const std::vector<std::complex<float>>& XR, int frames,
                                                           bool per_frame) const {
  std::vector<std::complex<double>> acc(static_cast<size_t>(bins_), {0.0, 0.0});
  for (int t = 0; t < frames; ++t)
    for (int k = bin_lo_; k <= bin_hi_; ++k) {
      const std::complex<float> l = XL[size_t(t) * bins_ + k], r = XR[size_t(t) * bins_ + k];
      if (per_frame) {  // the unit phasor of this frame (in float, as the device computes it)
        const std::complex<float> g = l * std::conj(r);
        const float a = std::abs(g);
        if (a > 0) acc[size_t(k)] += std::complex<double>(g / a);
      } else {          // the cross-power, in double as the MUSIC covariance
        acc[size_t(k)] += std::complex<double>(l) * std::conj(std::complex<double>(r));
      }
    }
  std::vector<std::complex<float>> G(static_cast<size_t>(bins_), {0.0f, 0.0f});
  for (int k = bin_lo_; k <= bin_hi_; ++k) {
    const std::complex<double> v = acc[size_t(k)];
    const double a = std::abs(v);
    // Averaging before the inverse transform equals averaging the per-frame GCC functions (per_frame).
    G[size_t(k)] = std::complex<float>(per_frame ? v : a > 0 ? v / a : std::complex<double>(0.0, 0.0));
  }
  return G;
}

std::vector<double> ClassicDoa::gcc_phat(const std::vector<std::complex<float>>& G) const {
  const double lag = phat_peak_lag(G, stft_.n_fft, 0.0015 * fs_hz_);
  // The nearest ITD in the set's table wins.
  std::vector<double> score(itd_samples_.size());
  for (size_t c = 0; c < itd_samples_.size(); ++c) score[c] = -std::fabs(itd_samples_[c] - lag);
  return score;
}

std::vector<double> ClassicDoa::srp_phat(const std::vector<std::complex<float>>& G) const {
  std::vector<double> score(azimuth_deg_.size(), 0.0);
  for (size_t c = 0; c < azimuth_deg_.size(); ++c) {
    double p = 0;
    for (int k = bin_lo_; k <= bin_hi_; ++k) {
      const std::complex<double> h = std::complex<double>(hl_[c * bins_ + k] * std::conj(hr_[c * bins_ + k]));
      const double a = std::abs(h);
      if (a > 0) p += (std::complex<double>(G[size_t(k)]) * std::conj(h / a)).real();
    }
    score[c] = p;
  }
  return score;
}

std::vector<double> ClassicDoa::music(const std::vector<std::complex<float>>& XL,
                                      const std::vector<std::complex<float>>& XR, int frames) const {
  std::vector<double> score(azimuth_deg_.size(), 0.0);
  std::vector<double> p(azimuth_deg_.size());
  for (int k = bin_lo_; k <= bin_hi_; ++k) {
    // R = sum_t x x^H with x = [X_L, X_R]: [[a, b], [conj b, d]].
    double a = 0, d = 0;
    std::complex<double> b = 0;
    for (int t = 0; t < frames; ++t) {
      const std::complex<double> l = XL[size_t(t) * bins_ + k], r = XR[size_t(t) * bins_ + k];
      a += std::norm(l), d += std::norm(r), b += l * std::conj(r);
    }
    if (a + d <= 0) continue;
    // Smallest eigenvalue of the 2x2 Hermitian matrix and its eigenvector (the noise subspace).
    const double tr = a + d, det = a * d - std::norm(b);
    const double lmin = 0.5 * (tr - std::sqrt(std::max(0.0, tr * tr - 4 * det)));
    std::complex<double> e0, e1;
    if (std::abs(b) > 1e-12 * tr) {
      e0 = b, e1 = lmin - a;  // (R - lmin I) e = 0
    } else {
      e0 = a <= d ? 1.0 : 0.0, e1 = a <= d ? 0.0 : 1.0;
    }
    const double en = std::sqrt(std::norm(e0) + std::norm(e1));
    e0 /= en, e1 /= en;
    double pmax = 0;
    for (size_t c = 0; c < azimuth_deg_.size(); ++c) {
      const std::complex<double> hl = hl_[c * bins_ + k], hr = hr_[c * bins_ + k];
      const double hn = std::norm(hl) + std::norm(hr);
      const double proj = std::norm(std::conj(e0) * hl + std::conj(e1) * hr) / std::max(hn, 1e-30);
      p[c] = 1.0 / std::max(proj, 1e-12);
      pmax = std::max(pmax, p[c]);
    }
    for (size_t c = 0; c < azimuth_deg_.size(); ++c) score[c] += p[c] / pmax;  // each bin votes with weight 1
  }
  return score;
}

}  // namespace bsim
