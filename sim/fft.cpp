// FFTW plan cache and FFT convolution.
#include "sim/fft.h"

#include <fftw3.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <new>

namespace bsim {

template <typename T>
T* AlignedAllocator<T>::allocate(std::size_t n) {
  void* p = fftwf_malloc(n * sizeof(T));
  if (!p && n) throw std::bad_alloc();
  return static_cast<T*>(p);
}
template <typename T>
void AlignedAllocator<T>::deallocate(T* p, std::size_t) noexcept {
  fftwf_free(p);
}
template struct AlignedAllocator<float>;
template struct AlignedAllocator<std::complex<float>>;

int good_fft_size(int n) {
  int best = 1;
  while (best < n) best *= 2;
  for (long a = 1; a < best; a *= 2)
    for (long b = a; b < best; b *= 3)
      for (long c = b; c < best; c *= 5)
        if (c >= n) best = int(std::min<long>(best, c));
  return best;
}

namespace {
struct PlanPair {
  fftwf_plan fwd, inv;
};
std::map<int, PlanPair>& plan_cache() {
  static std::map<int, PlanPair> cache;  // plans live for the whole process
  return cache;
}
}  // namespace

std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

RealFft::RealFft(int n) : n_(n) {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  auto& cache = plan_cache();
  auto it = cache.find(n);
  if (it == cache.end()) {
    FloatVec r(static_cast<size_t>(n));
    ComplexVec c(static_cast<size_t>(n / 2 + 1));
    auto* cc = reinterpret_cast<fftwf_complex*>(c.data());
    PlanPair p{fftwf_plan_dft_r2c_1d(n, r.data(), cc, FFTW_ESTIMATE),
               fftwf_plan_dft_c2r_1d(n, cc, r.data(), FFTW_ESTIMATE)};
    it = cache.emplace(n, p).first;
  }
  fwd_ = it->second.fwd;
  inv_ = it->second.inv;
}

void RealFft::forward(const float* in, std::complex<float>* out) const {
  fftwf_execute_dft_r2c(static_cast<fftwf_plan>(fwd_), const_cast<float*>(in), reinterpret_cast<fftwf_complex*>(out));
}

void RealFft::inverse(std::complex<float>* in, float* out) const {
  fftwf_execute_dft_c2r(static_cast<fftwf_plan>(inv_), reinterpret_cast<fftwf_complex*>(in), out);
}

void convolve_many(const float* x, int n_x, const std::vector<const float*>& h, int n_h, int n_out,
                   const std::vector<float*>& out, const SpectralTilt& x_tilt) {
  const int n = good_fft_size(std::max(n_out, std::min(n_x, n_out) + n_h - 1));
  RealFft fft(n);
  FloatVec buf(static_cast<size_t>(n), 0.0f);
  ComplexVec X(static_cast<size_t>(fft.bins())), H(static_cast<size_t>(fft.bins()));
  std::copy(x, x + std::min(n_x, n_out), buf.begin());  // samples past n_out cannot reach the kept output
  fft.forward(buf.data(), X.data());
  if (x_tilt.db_per_octave != 0.0f)
    for (int b = 0; b < fft.bins(); ++b) X[size_t(b)] *= spectral_tilt_gain(x_tilt.db_per_octave, b, n, x_tilt.fs_hz);
  const float scale = 1.0f / float(n);
  for (size_t k = 0; k < h.size(); ++k) {
    std::fill(buf.begin(), buf.end(), 0.0f);
    std::copy(h[k], h[k] + n_h, buf.begin());
    fft.forward(buf.data(), H.data());
    for (int b = 0; b < fft.bins(); ++b) H[b] *= X[b] * scale;
    fft.inverse(H.data(), buf.data());
    std::copy(buf.begin(), buf.begin() + n_out, out[k]);
  }
}

}  // namespace bsim
