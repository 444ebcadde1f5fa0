// Owners for device resources: memory, streams. Move-only; destructors never throw.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>

#include "kernels/check.cuh"

namespace bsim::cuda {

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    void* p = nullptr;
    if (n) BSIM_CUDA_TRY(cudaMalloc(&p, n * sizeof(T)));
    ptr_.reset(p);
  }
  T* get() const { return static_cast<T*>(ptr_.get()); }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<void, DeviceFree> ptr_;
  size_t n_ = 0;
};

class Stream {
 public:
  Stream() { BSIM_CUDA_TRY(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

}  // namespace bsim::cuda
