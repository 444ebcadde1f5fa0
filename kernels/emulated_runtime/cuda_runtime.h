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
// Streams and events are modelled (BSIM_EMULATION_STREAMS=deferred, the default): every asynchronous call —
// kernel launch, copy or memset on a stream, cuFFT execution, event record, wait on an event — joins its
// stream's queue and runs only when the host forces it (cudaStreamSynchronize, cudaEventSynchronize,
// cudaDeviceSynchronize, a copy to host memory that the API makes synchronous, cudaFree, cudaFreeHost,
// cufftDestroy, a wait of another stream that runs), as late as the API allows. The legacy default stream (0)
// is one more stream, ordered against the blocking ones and not the non-blocking ones (cudaStreamNonBlocking),
// and cudaMemset and a host-to-device cudaMemcpy from pageable memory go to it without waiting, as on the
// device. So host code that reads results before synchronising, or
// that orders two streams' work by hoping, sees old memory (NaN where nothing was written) in every run, where
// a device would show it only now and then. BSIM_EMULATION_STREAMS=immediate runs each call before it returns
// (one valid order too; the emulation's behaviour before 2026-11-27).
//
// What it does not model: races between threads (compute-sanitizer's racecheck; kernels/emulation.h runs the
// threads in both orders), registers and occupancy, and the device's float rounding (FMA contraction, fast
// intrinsics).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

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
  cudaErrorLaunchFailure = 719,
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
cudaError_t cudaDeviceSynchronize();
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

// Puts `op` at the end of stream s's queue (0: the legacy default stream); it runs when the host forces the
// stream that far (see the top of this file), or now with BSIM_EMULATION_STREAMS=immediate.
void enqueue(cudaStream_t s, std::function<void()> op);

// What BSIM_LAUNCH(kernel, grid, block, shared, stream)(args...) becomes: a checked launch of every block,
// queued on its stream. The arguments are converted to the kernel's parameters at the launch, as the device
// copies them then: a host variable changed afterwards does not reach the kernel.
template <typename Kernel>
struct Launch;
template <typename... Params>
struct Launch<void (*)(Params...)> {
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  const char* name;
  template <typename... Args>
  void operator()(Args&&... args) const {
    if (!launch_allowed(reinterpret_cast<const void*>(kernel), name, grid, block, shared_bytes)) return;
    enqueue(stream, [k = kernel, g = grid, b = block, sh = shared_bytes, n = name,
                     params = std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)] {
      std::apply([&](const auto&... p) { launch_blocks(g, b, sh, k, n, p...); }, params);
    });
  }
};
}  // namespace bsim::emu

// (+kernel: a kernel's name or a variable holding a kernel pointer, as <<<>>> takes both.)
#define BSIM_LAUNCH(kernel, grid, block, shared, stream)                                                    \
  ::bsim::emu::Launch<decltype(+kernel)> { +kernel, dim3(grid), dim3(block), size_t(shared), (stream), #kernel }
