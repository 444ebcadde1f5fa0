// The part of the CUDA runtime API that bsim's host code (kernels/*.cu) uses, implemented on the CPU
// (runtime.cpp), so that the .cu files compile as C++ and the whole GPU backend — buffers, copies, plans,
// launch shapes and kernels — runs in CI, where no GPU exists. Only the build of the emulated backend
// (kernels/CMakeLists.txt: bsim_kernels_emulated) puts this folder on the include path.
//
// What it checks that a device would otherwise be needed for: launch shapes (block and grid limits, dynamic
// shared memory against the 48 KiB default and the opt-in of cudaFuncSetAttribute, up to the H100/H200's
// 227 KiB), barriers every thread of a block reaches (kernels/emulation.h), copies and memsets that stay
// inside one device allocation and go the direction their kind names, cuFFT executions whose whole batch
// lies inside device allocations, and device memory that is never read before it is written (new
// allocations and each block's shared memory hold 0xFF bytes: NaN as floats). A device's memory size is
// emulated too (BSIM_EMULATED_DEVICE_GIB, default 16), so out-of-memory paths run.
//
// What it does not model: concurrency between streams (every call completes before it returns, which is one
// valid order of the stream semantics; an ordering bug between two streams goes unseen), races between
// threads, registers and occupancy, and the device's float rounding (FMA contraction, fast intrinsics).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/emulation.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
};
using cudaError = cudaError_t;
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37 };
constexpr unsigned cudaStreamNonBlocking = 0x01;
constexpr unsigned cudaEventDefault = 0x00;
constexpr unsigned cudaEventDisableTiming = 0x02;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlockOptin;
  int major, minor;
  int maxThreadsPerBlock;
};

const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value);
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

namespace bsim::emu {
// Checks a launch shape as the device would (limits, dynamic shared memory against the kernel's opt-in);
// false, with the error left for cudaGetLastError, where the device would refuse the launch.
bool launch_allowed(const void* kernel, const char* name, dim3 grid, dim3 block, size_t shared_bytes);

// What BSIM_LAUNCH(kernel, grid, block, shared, stream)(args...) becomes: a checked launch of every block.
template <typename Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;  // every call completes in order: the stream only has to be valid
  const char* name;
  template <typename... Args>
  void operator()(Args&&... args) const {
    if (launch_allowed(reinterpret_cast<const void*>(kernel), name, grid, block, shared_bytes))
      launch_blocks(grid, block, shared_bytes, kernel, name, std::forward<Args>(args)...);
  }
};
}  // namespace bsim::emu

// (+kernel: a kernel's name or a variable holding a kernel pointer, as <<<>>> takes both.)
#define BSIM_LAUNCH(kernel, grid, block, shared, stream)                                                    \
  ::bsim::emu::Launch<decltype(+kernel)> { +kernel, dim3(grid), dim3(block), size_t(shared), (stream), #kernel }
