// Owners for device resources: device and pinned host memory, streams, events. Move-only; destructors never
// throw.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

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
    if (n) ptr_.reset(device_malloc(n * sizeof(T)));
  }
  T* get() const { return static_cast<T*>(ptr_.get()); }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<void, DeviceFree> ptr_;
  size_t n_ = 0;
};

// Copies n values from pageable host memory to the device and waits until they are there (set-up code). A
// cudaMemcpy alone does not: from pageable memory it returns once the bytes are staged, possibly before they
// land, and the legacy default stream it uses does not order the non-blocking streams that read them.
template <typename T>
void upload_and_wait(T* device, const T* host, size_t n) {
  if (n == 0) return;
  BSIM_CUDA_TRY(cudaMemcpy(device, host, n * sizeof(T), cudaMemcpyHostToDevice));
  BSIM_CUDA_TRY(cudaStreamSynchronize(nullptr));
}

// A device copy of a host vector, there when this returns (set-up code).
template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> d(host.size());
  upload_and_wait(d.get(), host.data(), host.size());
  return d;
}

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

// Page-locked host memory (what asynchronous copies to and from the device need).
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t n) : n_(n) {
    if (n) BSIM_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

class Event {
 public:
  explicit Event(bool timing = false) {
    BSIM_CUDA_TRY(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace bsim::cuda
