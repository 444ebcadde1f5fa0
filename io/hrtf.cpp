// libmysofa loading and delay-separated interpolation onto a dense direction grid.
#include "io/hrtf.h"

#include <mysofa.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "io/error.h"
#include "io/grid_index.h"
#include "sim/fracdelay.h"

namespace bsim {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kPreOnset = 3;        // samples kept before the detected onset (pre-ringing after resampling)
constexpr double kOnsetRel = 0.15;  // onset: first sample reaching 15% of the IR's peak
constexpr int kRedelayHalfWidth = 16;

std::string mysofa_error_text(int err) {
  switch (err) {
    case MYSOFA_INVALID_FORMAT: return "not a SOFA/HDF5 file or corrupt";
    case MYSOFA_UNSUPPORTED_FORMAT: return "unsupported SOFA/HDF5 layout";
    case MYSOFA_NO_MEMORY: return "out of memory";
    case MYSOFA_READ_ERROR: return "read error (missing or truncated file?)";
    case MYSOFA_INVALID_ATTRIBUTES: return "not a SimpleFreeFieldHRIR set (invalid attributes)";
    case MYSOFA_INVALID_DIMENSIONS: return "invalid dimensions";
    case MYSOFA_INVALID_DIMENSION_LIST: return "invalid dimension list";
    case MYSOFA_INVALID_COORDINATE_TYPE: return "invalid coordinate type";
    case MYSOFA_ONLY_EMITTER_WITH_ECI_SUPPORTED: return "only one emitter supported";
    case MYSOFA_ONLY_DELAYS_WITH_IR_OR_MR_SUPPORTED: return "unsupported Data.Delay layout";
    case MYSOFA_ONLY_THE_SAME_SAMPLING_RATE_SUPPORTED: return "several sampling rates in one file";
    case MYSOFA_RECEIVERS_WITH_RCI_SUPPORTED: return "unsupported receiver layout";
    case MYSOFA_RECEIVERS_WITH_CARTESIAN_SUPPORTED: return "unsupported receiver coordinates";
    case MYSOFA_INVALID_RECEIVER_POSITIONS: return "invalid receiver positions";
    case MYSOFA_ONLY_SOURCES_WITH_MC_SUPPORTED: return "unsupported source layout";
    default: return "libmysofa error " + std::to_string(err);
  }
}

struct HrtfDeleter {
  void operator()(MYSOFA_HRTF* h) const { mysofa_free(h); }
};

int onset_of(const float* h, int n) {
  float peak = 0;
  for (int i = 0; i < n; ++i) peak = std::max(peak, std::fabs(h[i]));
  for (int i = 0; i < n; ++i)
    if (std::fabs(h[i]) >= kOnsetRel * peak) return i;
  return 0;
}

}  // namespace

int HrirGrid::index(double azimuth_deg, double elevation_deg) const {
  return grid_direction_index(azimuth_deg, elevation_deg, n_az, n_el, az_step_deg, el_step_deg);
}

HrirGrid load_hrir_grid(const std::string& path, double fs_hz, double az_step_deg, double el_step_deg,
                        const std::string& origin) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError("SOFA file '" + path + "' does not exist: check " + origin);
  int err = 0;
  std::unique_ptr<MYSOFA_HRTF, HrtfDeleter> hrtf(mysofa_load(path.c_str(), &err));
  if (!hrtf || err != MYSOFA_OK)
    throw InputError("SOFA file '" + path + "' cannot be loaded: " + mysofa_error_text(err));
  err = mysofa_check(hrtf.get());
  if (err != MYSOFA_OK) throw InputError("SOFA file '" + path + "' is not usable: " + mysofa_error_text(err));
  if (hrtf->R != 2) throw InputError("SOFA file '" + path + "' has " + std::to_string(hrtf->R) + " receivers; need 2 ears");
  if (hrtf->M < 3) throw InputError("SOFA file '" + path + "' has fewer than 3 measured directions");

  HrirGrid g;
  g.path = path;
  g.n_measured = int(hrtf->M);
  g.file_taps = int(hrtf->N);
  g.file_fs_hz = hrtf->DataSamplingRate.values ? hrtf->DataSamplingRate.values[0] : 0.0;
  if (!(g.file_fs_hz > 0)) throw InputError("SOFA file '" + path + "' has no valid Data.SamplingRate");
  for (unsigned i = 0; i < hrtf->DataIR.elements; ++i)
    if (!std::isfinite(hrtf->DataIR.values[i])) throw InputError("SOFA file '" + path + "' holds NaN/Inf in Data.IR");

  // Remember the file's delays (samples at the file rate) before resampling touches anything.
  std::vector<double> file_delay(static_cast<size_t>(hrtf->M) * 2, 0.0);
  if (hrtf->DataDelay.values) {
    const unsigned n = hrtf->DataDelay.elements;
    for (unsigned m = 0; m < hrtf->M; ++m)
      for (int r = 0; r < 2; ++r) {
        const unsigned idx = (n == 2) ? unsigned(r) : m * 2 + r;
        if (idx < n) file_delay[m * 2 + r] = hrtf->DataDelay.values[idx];
      }
  }
  if (std::fabs(g.file_fs_hz - fs_hz) > 1e-6) {
    err = mysofa_resample(hrtf.get(), float(fs_hz));
    if (err != MYSOFA_OK) throw InputError("SOFA file '" + path + "': resampling failed: " + mysofa_error_text(err));
  }
  mysofa_loudness(hrtf.get());
  mysofa_tocartesian(hrtf.get());
  g.fs_hz = fs_hz;
  const int M = int(hrtf->M), N = int(hrtf->N);
  const double delay_scale = fs_hz / g.file_fs_hz;

  // Measured directions as unit vectors; onsets and onset-aligned IRs per ear.
  std::vector<double> dir(static_cast<size_t>(M) * 3);
  double el_min = 90, el_max = -90;
  for (int m = 0; m < M; ++m) {
    const float* p = hrtf->SourcePosition.values + size_t(m) * 3;
    const double r = std::sqrt(double(p[0]) * p[0] + double(p[1]) * p[1] + double(p[2]) * p[2]);
    if (!(r > 0)) throw InputError("SOFA file '" + path + "' has a source position at the head centre");
    for (int c = 0; c < 3; ++c) dir[m * 3 + c] = p[c] / r;
    const double el = std::asin(std::clamp(dir[m * 3 + 2], -1.0, 1.0)) * 180.0 / kPi;
    el_min = std::min(el_min, el), el_max = std::max(el_max, el);
  }
  // Which stored receiver is the left ear? Decided from the data, not from ReceiverPosition: several
  // published files (CIPIC, LISTEN, FHK, MIT large pinna as shipped) put receiver 0 at -y although it is
  // the left ear. Sources on the left (+y) are louder in the left ear.
  double lateral_balance = 0;
  for (int m = 0; m < M; ++m) {
    double e[2] = {0, 0};
    for (int r = 0; r < 2; ++r)
      for (int i = 0; i < N; ++i) {
        const double v = hrtf->DataIR.values[(size_t(m) * 2 + r) * N + i];
        e[r] += v * v;
      }
    lateral_balance += dir[m * 3 + 1] * (e[0] - e[1]);
  }
  const int left = lateral_balance >= 0 ? 0 : 1;
  g.el_min_measured_deg = el_min;
  g.el_max_measured_deg = el_max;

  const int n_aligned = N;
  std::vector<float> aligned(static_cast<size_t>(M) * 2 * n_aligned, 0.0f);
  std::vector<double> onset(static_cast<size_t>(M) * 2);
  for (int m = 0; m < M; ++m)
    for (int ear = 0; ear < 2; ++ear) {
      const int rec = ear == 0 ? left : 1 - left;
      const float* h = hrtf->DataIR.values + (static_cast<size_t>(m) * 2 + rec) * N;
      const int o = std::max(0, onset_of(h, N) - kPreOnset);  // keep kPreOnset samples of pre-ringing
      float* a = aligned.data() + (static_cast<size_t>(m) * 2 + ear) * n_aligned;
      for (int i = 0; i + o < N; ++i) a[i] = h[i + o];
      onset[m * 2 + ear] = o + file_delay[m * 2 + rec] * delay_scale;
    }

  // Trim the set's common lead-in (loudspeaker distance, file padding): the earliest ear of the whole set
  // starts kPreOnset samples into the grid HRIR, so arrival times stay d/c plus the head's own delays.
  double min_onset = 1e30, max_onset = 0;
  for (double o : onset) min_onset = std::min(min_onset, o);
  for (double& o : onset) o -= min_onset, max_onset = std::max(max_onset, o);
  g.n_taps = int(std::ceil(max_onset)) + N + kRedelayHalfWidth;
  g.n_az = std::max(1, int(std::lround(360.0 / az_step_deg)));
  g.n_el = std::max(2, int(std::lround(180.0 / el_step_deg)) + 1);
  g.az_step_deg = 360.0 / g.n_az;
  g.el_step_deg = 180.0 / (g.n_el - 1);
  g.ir.assign(static_cast<size_t>(g.n_az) * g.n_el * 2 * g.n_taps, 0.0f);

  for (int ie = 0; ie < g.n_el; ++ie)
    for (int ia = 0; ia < g.n_az; ++ia) {
      const double az = ia * g.az_step_deg * kPi / 180.0, el = (-90.0 + ie * g.el_step_deg) * kPi / 180.0;
      const double u[3] = {std::cos(el) * std::cos(az), std::cos(el) * std::sin(az), std::sin(el)};
      // Three nearest measurements by angle.
      int best[3] = {-1, -1, -1};
      double bdot[3] = {-2, -2, -2};
      for (int m = 0; m < M; ++m) {
        const double d = u[0] * dir[m * 3] + u[1] * dir[m * 3 + 1] + u[2] * dir[m * 3 + 2];
        if (d > bdot[2]) {
          int k = 2;
          while (k > 0 && d > bdot[k - 1]) bdot[k] = bdot[k - 1], best[k] = best[k - 1], --k;
          bdot[k] = d, best[k] = m;
        }
      }
      double w[3], wsum = 0;
      const double a0 = std::acos(std::clamp(bdot[0], -1.0, 1.0));
      for (int k = 0; k < 3; ++k) {
        const double ang = std::acos(std::clamp(bdot[k], -1.0, 1.0));
        w[k] = (a0 < 1e-6) ? (k == 0 ? 1.0 : 0.0) : 1.0 / ang;
        wsum += w[k];
      }
      const int gi = ie * g.n_az + ia;
      for (int ear = 0; ear < 2; ++ear) {
        std::vector<float> blend(n_aligned, 0.0f);
        double o = 0;
        for (int k = 0; k < 3; ++k) {
          const double wk = w[k] / wsum;
          if (wk == 0) continue;
          const float* a = aligned.data() + (static_cast<size_t>(best[k]) * 2 + ear) * n_aligned;
          for (int i = 0; i < n_aligned; ++i) blend[i] += float(wk) * a[i];
          o += wk * onset[best[k] * 2 + ear];
        }
        float* out = g.ir.data() + (static_cast<size_t>(gi) * 2 + ear) * g.n_taps;
        add_delayed(out, g.n_taps, blend.data(), n_aligned, o, 1.0f, kRedelayHalfWidth);
      }
    }
  return g;
}

HrirGrid scale_head_size(const HrirGrid& g, double scale) {
  BSIM_EXPECTS(scale >= 0.5 && scale <= 2.0, "head scale " + std::to_string(scale) + " is outside [0.5, 2]");
  if (scale == 1.0) return g;
  constexpr int kHalfWidth = 16;  // kernel half width in (input samples) / cutoff
  const double cut = std::min(1.0, scale);  // cutoff as a fraction of the input's Nyquist
  const double reach = (kHalfWidth + 1) / cut;
  HrirGrid out = g;
  out.n_taps = int(std::ceil(g.n_taps * scale + reach * scale));
  out.ir.assign(static_cast<size_t>(g.n_az) * g.n_el * 2 * out.n_taps, 0.0f);
  // One kernel row per output tap (positions n / s are the same for every IR): weights and first input index.
  std::vector<int> first(out.n_taps);
  const int width = int(std::ceil(2 * reach)) + 1;
  std::vector<double> wt(static_cast<size_t>(out.n_taps) * width, 0.0);
  for (int n = 0; n < out.n_taps; ++n) {
    const double tau = n / scale;
    first[n] = int(std::floor(tau - reach)) + 1;
    for (int j = 0; j < width; ++j) {
      const double x = tau - (first[n] + j);  // input samples from the kernel centre
      const double a = x * cut / (kHalfWidth + 1);
      if (a <= -1.0 || a >= 1.0) continue;
      const double sinc = std::fabs(x) < 1e-12 ? 1.0 : std::sin(kPi * cut * x) / (kPi * cut * x);
      wt[size_t(n) * width + j] = cut * sinc * 0.5 * (1.0 + std::cos(kPi * a)) / scale;
    }
  }
  for (size_t r = 0; r < static_cast<size_t>(g.n_az) * g.n_el * 2; ++r) {
    const float* h = g.ir.data() + r * g.n_taps;
    float* y = out.ir.data() + r * out.n_taps;
    for (int n = 0; n < out.n_taps; ++n) {
      double acc = 0;
      for (int j = 0; j < width; ++j) {
        const int m = first[n] + j;
        if (m >= 0 && m < g.n_taps) acc += wt[size_t(n) * width + j] * h[m];
      }
      y[n] = float(acc);
    }
  }
  return out;
}

}  // namespace bsim
