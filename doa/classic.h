// Classic binaural DoA estimators, steered with an HRTF set rather than free-field formulas:
//   GCC-PHAT  - lag of the GCC-PHAT peak, mapped to azimuth through the set's own ITD table;
//   SRP-PHAT  - steered response power of the PHAT-weighted cross-spectrum against each direction's
//               interaural transfer function;
//   MUSIC     - per-bin 2x2 spatial covariance, noise subspace against HRTF steering vectors, pseudo-spectra
//               normalised per bin and summed over 200 Hz - 7 kHz.
// The PHAT cross-spectrum of gcc_phat / srp_phat is Knapp and Carter's: the cross-power spectrum averaged over
// the frames, then whitened, so that loud frames (speech) outweigh quiet ones (pauses, where a steady noise
// source is all there is). The *_frames variants whiten every frame first and average the unit phasors (every
// frame one vote): better in diffuse noise, easily captured by a steady point source in the speech's pauses.
// All work on the horizontal plane (elevation 0) over the candidate azimuths of a frontal or full grid.
#pragma once
#include <complex>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/hrtf.h"

namespace bsim {

enum class ClassicMethod { gcc_phat, srp_phat, music, gcc_phat_frames, srp_phat_frames };
constexpr int kClassicMethods = 5;  // the enum's values are 0 .. kClassicMethods - 1
ClassicMethod classic_method(const std::string& name);
const char* classic_method_name(ClassicMethod m);

class ClassicDoa {
 public:
  // candidates: azimuths in [-90, 90] (frontal) or [-180, 180) (full) every step_deg.
  ClassicDoa(const HrirGrid& grid, const FeatureConfig& stft, bool full_circle, double step_deg = 1.0);
  double estimate(ClassicMethod m, const float* left, const float* right, int n) const;  // azimuth, degrees
  // Several methods on one STFT: the azimuth of each, in the order of `methods`.
  std::vector<double> estimate(const std::vector<ClassicMethod>& methods, const float* left, const float* right, int n) const;
  // The score of every candidate (higher is better; estimate() returns the first maximum): the steered power
  // (SRP-PHAT), the summed per-bin normalised pseudo-spectrum (MUSIC), minus the distance of the candidate's
  // ITD to the GCC-PHAT peak lag in samples (GCC-PHAT).
  std::vector<double> scores(ClassicMethod m, const float* left, const float* right, int n) const;

  const std::vector<double>& candidates() const { return azimuth_deg_; }
  const std::vector<double>& itd_table() const { return itd_samples_; }  // ITD per candidate (samples, + = left leads)
  // What another implementation (kernels/doa_gpu.h) needs to decide exactly as this one does.
  const std::vector<std::complex<float>>& hrtf_left() const { return hl_; }   // [candidate][bin]
  const std::vector<std::complex<float>>& hrtf_right() const { return hr_; }  // [candidate][bin]
  int bin_lo() const { return bin_lo_; }
  int bin_hi() const { return bin_hi_; }
  int max_lag_eighths() const;  // GCC peak search range on the 1/8-sample grid
  const FeatureConfig& stft_config() const { return stft_; }

 private:
  // The PHAT cross-spectrum over the analysis band (0 elsewhere): whitened after (per_frame false) or before
  // (true) averaging over the frames.
  std::vector<std::complex<float>> phat_spectrum(const std::vector<std::complex<float>>& XL,
                                                 const std::vector<std::complex<float>>& XR, int frames,
                                                 bool per_frame) const;
  std::vector<double> gcc_phat(const std::vector<std::complex<float>>& G) const;
  std::vector<double> srp_phat(const std::vector<std::complex<float>>& G) const;
  // The two ears' STFTs, [frame][bin] each; throws for signals shorter than one frame.
  struct Spectra {
    std::vector<std::complex<float>> XL, XR;
    int frames = 0;
    std::vector<std::complex<float>> phat[2];  // phat_spectrum(per_frame = 0 / 1), made when first needed
  };
  Spectra spectra(const float* left, const float* right, int n) const;
  std::vector<double> scores(ClassicMethod m, Spectra& s) const;
  std::vector<double> music(const std::vector<std::complex<float>>& XL, const std::vector<std::complex<float>>& XR, int frames) const;

  FeatureConfig stft_;
  double fs_hz_;
  int bins_, bin_lo_, bin_hi_;
  std::vector<double> azimuth_deg_;
  std::vector<std::complex<float>> hl_, hr_;  // [candidate][bin] HRTFs at the STFT resolution
  std::vector<double> itd_samples_;
};

}  // namespace bsim
