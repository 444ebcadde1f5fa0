// Image-source BRIRs with per-image HRIRs and a diffuse late tail.
#include "sim/brir.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "sim/fft.h"
#include "sim/fracdelay.h"

namespace bsim {
namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kBandCentreLowest = 125.0;

// Interpolates a per-bin table (n_fft/2+1 values at fs) at f_hz.
float interp_bins(const std::vector<float>& v, int n_fft, double fs, double f_hz) {
  const double pos = std::clamp(f_hz * n_fft / fs, 0.0, double(v.size() - 1));
  const size_t i = size_t(pos);
  if (i + 1 >= v.size()) return v.back();
  const double t = pos - double(i);
  return float((1 - t) * v[i] + t * v[i + 1]);
}
}  // namespace

float DiffuseField::magnitude_at(int ear, double f_hz) const { return interp_bins(magnitude[ear], n_fft, fs_hz, f_hz); }
float DiffuseField::coherence_at(double f_hz) const { return interp_bins(coherence, n_fft, fs_hz, f_hz); }

DiffuseField compute_diffuse_field(const HrirGrid& g) {
  DiffuseField df;
  df.n_fft = 512;
  while (df.n_fft < g.n_taps) df.n_fft *= 2;
  df.fs_hz = g.fs_hz;
  RealFft fft(df.n_fft);
  const int nb = fft.bins();
  std::vector<double> pl(nb, 0.0), pr(nb, 0.0), cross(nb, 0.0);
  FloatVec buf(static_cast<size_t>(df.n_fft));
  ComplexVec L(static_cast<size_t>(nb)), R(static_cast<size_t>(nb));
  double wsum = 0;
  for (int idx = 0; idx < g.n_az * g.n_el; ++idx) {
    const double el = g.grid_elevation_deg(idx);
    if (el < g.el_min_measured_deg - 1e-9 || el > g.el_max_measured_deg + 1e-9) continue;
    const double w = std::max(std::cos(el * kPi / 180.0), 1e-3);  // solid angle of a grid cell
    for (int ear = 0; ear < 2; ++ear) {
      std::fill(buf.begin(), buf.end(), 0.0f);
      std::copy(g.at(idx, ear), g.at(idx, ear) + g.n_taps, buf.begin());
      fft.forward(buf.data(), ear == 0 ? L.data() : R.data());
    }
    for (int b = 0; b < nb; ++b) {
      pl[b] += w * std::norm(L[b]);
      pr[b] += w * std::norm(R[b]);
      cross[b] += w * (std::conj(L[b]) * R[b]).real();
    }
    wsum += w;
  }
  for (int ear = 0; ear < 2; ++ear) df.magnitude[ear].resize(nb);
  df.coherence.resize(nb);
  for (int b = 0; b < nb; ++b) {
    df.magnitude[0][b] = float(std::sqrt(pl[b] / wsum));
    df.magnitude[1][b] = float(std::sqrt(pr[b] / wsum));
    const double den = std::sqrt(pl[b] * pr[b]);
    df.coherence[b] = den > 0 ? float(std::clamp(cross[b] / den, -1.0, 1.0)) : 0.0f;
  }
  return df;
}

double band_weight(int band, double f_hz) {
  // Position on a log2 axis in octaves above the lowest centre; band b owns position b.
  const double pos = std::log2(std::max(f_hz, 1e-3) / kBandCentreLowest);
  if (pos <= 0) return band == 0 ? 1.0 : 0.0;
  if (pos >= kTailBands - 1) return band == kTailBands - 1 ? 1.0 : 0.0;
  const int lo = int(pos);
  const double t = pos - lo;
  if (band == lo) return std::cos(0.5 * kPi * t) * std::cos(0.5 * kPi * t);
  if (band == lo + 1) return std::sin(0.5 * kPi * t) * std::sin(0.5 * kPi * t);
  return 0.0;
}

TailBandGroups tail_band_groups(const std::vector<double>& band_t60_ratio) {
  if (band_t60_ratio.size() != size_t(kTailBands))
    throw InputError("render.band_t60_ratio needs " + std::to_string(kTailBands) + " values, not " +
                     std::to_string(band_t60_ratio.size()));
  TailBandGroups g;
  for (double r : band_t60_ratio) {
    const auto it = std::find(g.ratio.begin(), g.ratio.end(), r);
    g.group_of_band.push_back(int(it - g.ratio.begin()));
    if (it == g.ratio.end()) g.ratio.push_back(r);
  }
  return g;
}

double TailBandGroups::weight(int group, double f_hz) const {
  double w = 0;
  for (int b = 0; b < kTailBands; ++b)
    if (group_of_band[size_t(b)] == group) w += band_weight(b, f_hz);
  return w;
}

double auto_transition_s(double volume_m3, double fs_hz, double c) {
  const double t = std::sqrt(0.5 * fs_hz * volume_m3 / (4.0 * kPi * c * c * c));
  return std::clamp(t, 0.02, 0.1);
}

void head_direction(const Vec3& p, const Vec3& listener, double yaw_deg, double& az, double& el, double& d) {
  const double vx = p.x - listener.x, vy = p.y - listener.y, vz = p.z - listener.z;
  const double psi = yaw_deg * kPi / 180.0;
  const double hx = std::cos(psi) * vx + std::sin(psi) * vy;
  const double hy = -std::sin(psi) * vx + std::cos(psi) * vy;
  d = std::sqrt(vx * vx + vy * vy + vz * vz);
  az = std::atan2(hy, hx) * 180.0 / kPi;
  el = std::atan2(vz, std::hypot(hx, hy)) * 180.0 / kPi;
}

int brir_length_samples(double last_arrival_s, double tail_t60_s, const std::vector<double>& band_t60_ratio,
                        double fs_hz, int n_taps, int frac_delay_half_width) {
  double end_s = last_arrival_s;
  if (tail_t60_s > 0)
    end_s = std::max(end_s, tail_t60_s * *std::max_element(band_t60_ratio.begin(), band_t60_ratio.end()));
  return int(std::ceil(end_s * fs_hz)) + n_taps + 2 * frac_delay_half_width + 1;
}

std::vector<float> noise_color_shape(int n_fft, double fs, double color_exponent) {
  const int nb = n_fft / 2 + 1;
  std::vector<float> shape(static_cast<size_t>(nb));
  double mean_pow = 0;
  for (int b = 0; b < nb; ++b) {
    const double f = std::max(double(b) * fs / n_fft, 50.0);
    shape[size_t(b)] = float(std::pow(f / 1000.0, -0.5 * color_exponent));
    mean_pow += double(shape[size_t(b)]) * shape[size_t(b)];
  }
  const float norm = float(1.0 / std::sqrt(mean_pow / nb));
  for (float& v : shape) v *= norm;
  return shape;
}

void diffuse_noise(Rng& rng, int n, double fs, const DiffuseField* df, double color_exponent, float* out_l,
                   float* out_r) {
  const int nf = good_fft_size(n);
  RealFft fft(nf);
  const int nb = fft.bins();
  FloatVec buf(static_cast<size_t>(nf));
  ComplexVec X1(static_cast<size_t>(nb)), X2(static_cast<size_t>(nb));
  for (auto& v : buf) v = float(rng.normal());
  fft.forward(buf.data(), X1.data());
  for (auto& v : buf) v = float(rng.normal());
  fft.forward(buf.data(), X2.data());
  const std::vector<float> shape = noise_color_shape(nf, fs, color_exponent);
  ComplexVec YL(static_cast<size_t>(nb)), YR(static_cast<size_t>(nb));
  for (int b = 0; b < nb; ++b) {
    const double f = double(b) * fs / nf;
    const float ml = df ? df->magnitude_at(0, f) : 1.0f, mr = df ? df->magnitude_at(1, f) : 1.0f;
    const float coh = df ? df->coherence_at(f) : 0.0f;
    const float s = shape[size_t(b)] / float(nf);
    YL[b] = X1[b] * (ml * s);
    YR[b] = (X1[b] * coh + X2[b] * std::sqrt(std::max(0.0f, 1.0f - coh * coh))) * (mr * s);
  }
  fft.inverse(YL.data(), buf.data());
  std::copy(buf.begin(), buf.begin() + n, out_l);
  if (out_r) {
    fft.inverse(YR.data(), buf.data());
    std::copy(buf.begin(), buf.begin() + n, out_r);
  }
}

namespace {

// Adds the late tail from the transition time on: diffuse noise split into octave bands, each band
// multiplied by sqrt(c / (4 pi V fs)) * exp(-3 ln10 t / T60_band), the expected image-source energy
// density of a room of volume V (so that the tail continues the early part at the same level). Bands of equal
// T60 are split off together (tail_band_groups).
void add_late_tail(const BrirRequest& req, const DiffuseField* df, int channels, Rng& rng, Brir& out) {
  const int L = out.length;
  const double fs = req.fs_hz, t0 = out.transition_s;
  const int start = std::max(0, int(std::floor((t0 - 0.5 * kTailFadeS) * fs)));
  if (start >= L) return;
  const int n = L;  // generate over the whole length so that bands are stationary where used
  const int nf = good_fft_size(n);
  RealFft fft(nf);
  const int nb = fft.bins();
  FloatVec noise_l(static_cast<size_t>(nf), 0.0f), noise_r(static_cast<size_t>(nf), 0.0f);
  diffuse_noise(rng, n, fs, channels == 2 ? df : nullptr, 0.0, noise_l.data(), channels == 2 ? noise_r.data() : nullptr);
  const Vec3& S = req.room.size_m;
  const double amp = std::sqrt(req.c_m_s / (4.0 * kPi * S.x * S.y * S.z * fs));
  ComplexVec spec(static_cast<size_t>(nb)), band(static_cast<size_t>(nb));
  FloatVec y(static_cast<size_t>(nf));
  const TailBandGroups groups = tail_band_groups(req.band_t60_ratio);
  const int G = int(groups.ratio.size());
  std::vector<float> weights(static_cast<size_t>(G) * nb);  // [group][bin], computed once per BRIR
  for (int k = 0; k < nb; ++k) {
    const double f = double(k) * fs / nf;
    for (int g = 0; g < G; ++g) weights[size_t(g) * nb + k] = float(groups.weight(g, f) / nf);
  }
  for (int ch = 0; ch < channels; ++ch) {
    FloatVec& x = ch == 0 ? noise_l : noise_r;
    fft.forward(x.data(), spec.data());
    float* dst = out.response[ch].data();
    for (int g = 0; g < G; ++g) {
      const float* w = weights.data() + size_t(g) * nb;
      for (int k = 0; k < nb; ++k) band[k] = spec[k] * w[k];
      fft.inverse(band.data(), y.data());
      const double t60 = req.t60_s * groups.ratio[size_t(g)];
      const double decay = -3.0 * std::log(10.0) / (t60 * fs);
      // exp(decay i) by one multiplication per sample (relative drift ~L x 1e-16 over the response).
      const double step = std::exp(decay);
      double envelope = amp * std::exp(decay * start);
      for (int i = start; i < L; ++i, envelope *= step) {
        const double t = double(i) / fs;
        double fade = 1.0;
        if (t < t0 + 0.5 * kTailFadeS) {
          const double u = std::clamp((t - (t0 - 0.5 * kTailFadeS)) / kTailFadeS, 0.0, 1.0);
          fade = std::sin(0.5 * kPi * u) * std::sin(0.5 * kPi * u);
        }
        dst[i] += float(envelope * fade) * y[i];
      }
    }
  }
}

}  // namespace

void render_brir(const BrirRequest& req, const HrirGrid* grid, const DiffuseField* df, Rng& tail_rng, Brir& out) {
  check_inside(req.room, req.listener_m, "listener");
  check_inside(req.room, req.source_m, "source");
  const double fs = req.fs_hz, c = req.c_m_s;
  const int hw = req.frac_delay_half_width;
  const int n_taps = grid ? grid->n_taps : 1;
  double dist = 0;
  head_direction(req.source_m, req.listener_m, req.yaw_deg, out.azimuth_deg, out.elevation_deg, dist);
  if (grid && df == nullptr && req.late_tail && !req.anechoic)
    throw RuntimeError("render_brir: a binaural late tail needs the HRTF set's diffuse field");
  const Vec3& S = req.room.size_m;
  out.transition_s = req.transition_s > 0 ? req.transition_s : auto_transition_s(S.x * S.y * S.z, fs, c);
  out.channels = grid ? 2 : 1;

  ImageLimit limit;
  if (req.anechoic)
    limit.max_order = 0;
  else if (req.late_tail)
    limit.max_distance_m = out.transition_s * c;
  else
    limit = req.image_limit;
  std::vector<ImageSource> images;
  enumerate_images(req.room, req.source_m, req.listener_m, limit, c, images);
  out.n_images = int(images.size());

  double max_delay = 0;
  for (const auto& im : images) max_delay = std::max(max_delay, im.delay_s);
  int length = req.length;
  if (length <= 0)
    length = brir_length_samples(max_delay, req.late_tail && !req.anechoic ? req.t60_s : 0.0, req.band_t60_ratio, fs,
                                 n_taps, hw);
  out.length = length;
  for (int ch = 0; ch < 2; ++ch) {
    out.response[ch].assign(ch < out.channels ? size_t(length) : 0, 0.0f);
    out.direct[ch].assign(ch < out.channels ? size_t(length) : 0, 0.0f);
  }

  const float one = 1.0f;
  for (const auto& im : images) {
    const bool is_direct = im.order == 0;
    const double delay = im.delay_s * fs;
    if (grid) {
      double az, el, d;
      head_direction(im.pos_m, req.listener_m, req.yaw_deg, az, el, d);
      const int idx = grid->index(az, el);
      for (int ear = 0; ear < 2; ++ear) {
        add_delayed(out.response[ear].data(), length, grid->at(idx, ear), n_taps, delay, float(im.gain), hw);
        if (is_direct)
          add_delayed(out.direct[ear].data(), length, grid->at(idx, ear), n_taps, delay, float(im.gain), hw);
      }
    } else {
      add_delayed(out.response[0].data(), length, &one, 1, delay, float(im.gain), hw);
      if (is_direct) add_delayed(out.direct[0].data(), length, &one, 1, delay, float(im.gain), hw);
    }
    if (is_direct) out.direct_delay_s = im.delay_s, out.direct_gain = im.gain;
  }
  if (req.late_tail && !req.anechoic) add_late_tail(req, df, out.channels, tail_rng, out);
}

}  // namespace bsim
