// Real FFTs on the CPU through FFTW (single precision). Plans are created once per size behind a lock
// (FFTW's planner is not thread-safe) and then executed concurrently from any thread.
#pragma once
#include <complex>
#include <cstddef>
#include <mutex>
#include <vector>

#include "sim/spectral_tilt.h"

namespace bsim {

// FFTW's planner is not thread-safe: whoever makes or destroys FFTW plans holds this lock (RealFft, and the
// emulated cuFFT of kernels/emulated_runtime/).
std::mutex& fftw_planner_mutex();

// Smallest 2^a 3^b 5^c >= n: sizes FFTW (and cuFFT) handle fast.
int good_fft_size(int n);

// 64-byte aligned float storage so that every buffer matches the alignment the plans were made with.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n);
  void deallocate(T* p, std::size_t) noexcept;
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};
using FloatVec = std::vector<float, AlignedAllocator<float>>;
using ComplexVec = std::vector<std::complex<float>, AlignedAllocator<std::complex<float>>>;

class RealFft {
 public:
  explicit RealFft(int n);  // looks up (or makes, once) the plans for size n
  int size() const { return n_; }
  int bins() const { return n_ / 2 + 1; }
  // in: n reals; out: n/2+1 complex. Unnormalised.
  void forward(const float* in, std::complex<float>* out) const;
  // in: n/2+1 complex (destroyed); out: n reals. Unnormalised (scale by 1/n yourself).
  void inverse(std::complex<float>* in, float* out) const;

 private:
  int n_;
  void* fwd_;
  void* inv_;
};

// Linear convolution of x (n_x) with each filter h[k] (n_h), keeping the first n_out samples of each
// result. One forward FFT of x serves all filters; x_tilt weights x's spectrum (sim/spectral_tilt.h).
void convolve_many(const float* x, int n_x, const std::vector<const float*>& h, int n_h, int n_out,
                   const std::vector<float*>& out, const SpectralTilt& x_tilt = {});

}  // namespace bsim
