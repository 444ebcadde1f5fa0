// The emulated CUDA runtime (kernels/emulated_runtime/) catches what only a device would otherwise show:
// barriers, launch shapes, copies and transforms outside their allocations, reads of memory never written,
// misaligned vector accesses (in the AddressSanitizer build), races between the threads of a block (in the
// ThreadSanitizer build).
// Each test here fails if the emulation stops checking (or stops computing) what it claims.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <complex>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/emulated_runtime/cufft.h"
#include "kernels/launch.cuh"
#include "sim/fft.h"

namespace {

// A tree reduction over one block: right only if every thread finishes each level before any reads the next.
__global__ void block_sum(const float* x, float* out) {
  BSIM_DYNAMIC_SHARED(float, s);
  const unsigned t = threadIdx.x;
  s[t] = x[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) s[t] += s[t + w];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// Threads past `n` leave before the barrier the others wait at: undefined on the device.
__global__ void early_return_before_barrier(float* x, int n) {
  if (int(threadIdx.x) >= n) return;
  x[threadIdx.x] = 1.0f;
  __syncthreads();
  x[threadIdx.x] += 1.0f;
}

// A barrier inside a branch only some threads take.
__global__ void barrier_in_branch(float* x) {
  if (threadIdx.x == 5) __syncthreads();
  x[threadIdx.x] = 2.0f;
}

// Copies dynamic shared memory out without writing it first.
__global__ void read_shared(float* out, int n) {
  BSIM_DYNAMIC_SHARED(float, s);
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = s[i];
}

// Reads a static shared array before writing it (what the previous block left there, on a device: anything).
__global__ void read_static_shared(float* out) {
  BSIM_SHARED(float, s, [32]);
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
  s[threadIdx.x] = 1.0f;
}

// Each thread reads its right neighbour's element and overwrites its own: racy without the barrier between.
__global__ void shift_left(float* out, bool barrier_between) {
  BSIM_DYNAMIC_SHARED(float, s);
  const unsigned t = threadIdx.x;
  s[t] = float(t);
  __syncthreads();
  const float next = t + 1 < blockDim.x ? s[t + 1] : -1.0f;
  if (barrier_between) __syncthreads();
  s[t] = next;
  __syncthreads();
  out[t] = s[t];
}

// Threads 2k and 2k + 1 both write x[k] (or, with `apart`, x[threadIdx.x]): no barrier in the kernel at all.
__global__ void pair_writes(float* x, bool apart) {
  x[apart ? threadIdx.x : threadIdx.x / 2] = float(threadIdx.x);
}

// Thread 1 of each block but the first copies the element that thread 0 of the block before writes: a race
// between blocks (the device runs them in any order, or at once); with `barrier`, the write comes before a
// barrier and the read after one (each block's own). Without `racy`, it computes that value instead.
__global__ void copy_previous_blocks(float* x, bool racy, bool barrier) {
  if (threadIdx.x == 0) x[blockIdx.x] = float(blockIdx.x) + 0.5f;
  if (barrier) __syncthreads();
  if (threadIdx.x == 1 && blockIdx.x > 0) x[gridDim.x + blockIdx.x] = racy ? x[blockIdx.x - 1] : float(blockIdx.x) - 0.5f;
}
// After a barrier, each block writes blockDim.x elements of x; with `overlap`, each block's first element is
// the block before's last (two blocks write it: a race between blocks in their last phase).
__global__ void write_block_ranges(float* x, int overlap) {
  BSIM_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  x[blockIdx.x * (blockDim.x - overlap) + threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// Reads pairs of floats as float2 starting `offset` floats into x: an odd offset is a misaligned float2.
__global__ void read_pairs(const float* x, int offset, float* out) {
  const float2* pairs = reinterpret_cast<const float2*>(x + offset);
  const float2 v = pairs[threadIdx.x];
  out[threadIdx.x] = v.x + v.y;
}

__global__ void fill(float* x, int n, float v) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = v;
}
__global__ void add_one(const float* x, float* y, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] + 1.0f;
}

__global__ void index_grid(int* out) {
  const int i = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x * blockDim.y + threadIdx.y * blockDim.x + threadIdx.x;
  out[i] = i;
}

template <typename T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

std::string last_error_text() { return cudaGetErrorString(cudaGetLastError()); }

// After a launch: runs the legacy stream's queue (where the launch waits) and returns its error, if any.
cudaError_t ran() {
  cudaStreamSynchronize(nullptr);
  return cudaGetLastError();
}

}  // namespace

TEST(EmulatedCuda, BarriersSeparateThePhasesOfEveryThread) {
  const int blocks = 3, threads = 256;
  std::vector<float> x(blocks * threads);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 97) - 40.0f;
  float* dx = device_alloc<float>(x.size());
  float* dout = device_alloc<float>(blocks);
  ASSERT_EQ(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  BSIM_LAUNCH(block_sum, blocks, threads, threads * sizeof(float), nullptr)(dx, dout);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<float> out(blocks);
  ASSERT_EQ(cudaMemcpy(out.data(), dout, blocks * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int b = 0; b < blocks; ++b) {
    double want = 0;
    for (int t = 0; t < threads; ++t) want += x[size_t(b) * threads + t];
    EXPECT_EQ(out[size_t(b)], float(want)) << "block " << b;
  }
  cudaFree(dx), cudaFree(dout);
}

TEST(EmulatedCuda, EveryThreadOfEveryBlockRunsWithItsIndices) {
  const dim3 grid(3, 2), block(8, 4);
  const int n = 3 * 2 * 8 * 4;
  int* d = device_alloc<int>(n);
  BSIM_LAUNCH(index_grid, grid, block, 0, nullptr)(d);
  std::vector<int> out(n, -1);
  ASSERT_EQ(cudaMemcpy(out.data(), d, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], i);
  cudaFree(d);
}

TEST(EmulatedCuda, ABarrierSomeThreadsNeverReachIsAFault) {
  float* d = device_alloc<float>(64);
  // A launch runs when its stream is synchronised (kernels/emulated_runtime/cuda_runtime.h): the fault shows there.
  try {
    BSIM_LAUNCH(early_return_before_barrier, 1, 64, 0, nullptr)(d, 40);
    cudaStreamSynchronize(nullptr);
    FAIL() << "threads that returned before a barrier went unnoticed";
  } catch (const bsim::emu::KernelFault& e) {
    EXPECT_NE(std::string(e.what()).find("40 of 64 threads"), std::string::npos) << e.what();
  }
  try {
    BSIM_LAUNCH(barrier_in_branch, 1, 32, 0, nullptr)(d);
    cudaStreamSynchronize(nullptr);
    FAIL() << "a barrier in a branch went unnoticed";
  } catch (const bsim::emu::KernelFault& e) {
    EXPECT_NE(std::string(e.what()).find("barrier_in_branch"), std::string::npos) << e.what();
  }
  BSIM_LAUNCH(early_return_before_barrier, 1, 64, 0, nullptr)(d, 64);  // every thread reaches it: fine
  std::vector<float> out(64);
  ASSERT_EQ(cudaMemcpy(out.data(), d, 64 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[63], 2.0f);
  cudaFree(d);
}

// A race within a phase shows as a result that depends on the order the threads run in; the ASan test runs
// every kernel in reverse order (BSIM_EMULATION_ORDER=reverse) for that reason.
TEST(EmulatedCuda, RunningThreadsInReverseExposesARaceWithinAPhase) {
#if BSIM_TSAN
  GTEST_SKIP() << "under ThreadSanitizer the race is reported as one (ARaceBetweenThreadsOfABlockIsReported)";
#endif
  const int n = 64;
  float* d = device_alloc<float>(n);
  std::vector<float> by_order[2][2];  // [barrier_between][order]
  const bsim::emu::Order saved = bsim::emu::run_order();
  for (int barrier = 0; barrier < 2; ++barrier)
    for (auto order : {bsim::emu::Order::forward, bsim::emu::Order::reverse}) {
      bsim::emu::run_order() = order;
      BSIM_LAUNCH(shift_left, 1, n, n * sizeof(float), nullptr)(d, barrier == 1);
      auto& out = by_order[barrier][int(order)];
      out.resize(n);
      ASSERT_EQ(cudaMemcpy(out.data(), d, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    }
  bsim::emu::run_order() = saved;
  for (int t = 0; t < n; ++t) {
    const float want = t + 1 < n ? float(t + 1) : -1.0f;
    EXPECT_EQ(by_order[1][0][size_t(t)], want);
    EXPECT_EQ(by_order[1][1][size_t(t)], want);
    EXPECT_EQ(by_order[0][0][size_t(t)], want);  // forward order happens to read before the neighbour writes
  }
  EXPECT_NE(by_order[0][1], by_order[1][1]) << "the race went unseen in reverse order";
  cudaFree(d);
}

// Under ThreadSanitizer (the _tsan build) a race between two threads of a block is reported whichever order
// they ran in, here forward: shift_left without its middle barrier reads a neighbour's element in the same
// phase in which the neighbour overwrites it, the phase after a barrier (so a barrier that ordered a thread
// after what another did past the same barrier would hide it); and two threads of a kernel without barriers
// write one element (their order decides the value left). Without the races, nothing is reported.
TEST(EmulatedCuda, ARaceBetweenThreadsOfABlockIsReported) {
  const int n = 64;
  float* d = device_alloc<float>(n);
  const bsim::emu::Order saved = bsim::emu::run_order();
  bsim::emu::run_order() = bsim::emu::Order::forward;
  const auto run = [&](bool barrier_between) {
    BSIM_LAUNCH(shift_left, 1, n, n * sizeof(float), nullptr)(d, barrier_between);
    return ran();
  };
  const auto run_pairs = [&](bool apart) {
    BSIM_LAUNCH(pair_writes, 1, n, 0, nullptr)(d, apart);
    return ran();
  };
  EXPECT_EQ(run(true), cudaSuccess);  // would stop the test under halt_on_error if it were reported
  EXPECT_EQ(run_pairs(true), cudaSuccess);
#if BSIM_TSAN
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TSAN_OPTIONS", "halt_on_error=1", 1);  // the child stops at the report, whatever the caller set
  EXPECT_DEATH(run(false), "ThreadSanitizer: data race");
  EXPECT_DEATH(run_pairs(false), "ThreadSanitizer: data race");
#else
  std::printf("(the race is reported by the ThreadSanitizer build of this test)\n");
#endif
  bsim::emu::run_order() = saved;
  cudaFree(d);
}

// Under ThreadSanitizer, blocks of one grid are not ordered either: a block reading what another wrote, or two
// blocks writing one element after their barriers, is reported (not between threads of the same index, which
// one fiber runs in every block; see kernels/emulation.h).
TEST(EmulatedCuda, ARaceBetweenBlocksOfAGridIsReported) {
  const int blocks = 4, threads = 32;
  float* d = device_alloc<float>(2 * blocks * threads);
  const auto copy = [&](bool racy, bool barrier) {
    BSIM_LAUNCH(copy_previous_blocks, blocks, threads, 0, nullptr)(d, racy, barrier);
    return ran();
  };
  const auto ranges = [&](int overlap) {
    BSIM_LAUNCH(write_block_ranges, blocks, threads, threads * sizeof(float), nullptr)(d, overlap);
    return ran();
  };
  EXPECT_EQ(copy(false, false), cudaSuccess);  // under halt_on_error, a report would stop the test here
  EXPECT_EQ(copy(false, true), cudaSuccess);
  EXPECT_EQ(ranges(0), cudaSuccess);
#if BSIM_TSAN
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  setenv("TSAN_OPTIONS", "halt_on_error=1", 1);
  EXPECT_DEATH(copy(true, false), "ThreadSanitizer: data race");
  EXPECT_DEATH(copy(true, true), "ThreadSanitizer: data race");  // one block's barrier does not order another's
  EXPECT_DEATH(ranges(1), "ThreadSanitizer: data race");
#else
  std::printf("(the races are reported by the ThreadSanitizer build of this test)\n");
#endif
  cudaFree(d);
}

TEST(EmulatedCuda, LaunchShapesTheDeviceRefusesAreRefused) {
  float* d = device_alloc<float>(1 << 16);
  BSIM_LAUNCH(read_shared, 1, 2048, 0, nullptr)(d, 16);
  EXPECT_NE(last_error_text().find("invalid configuration argument"), std::string::npos);
  BSIM_LAUNCH(read_shared, dim3(1, 70000), 32, 0, nullptr)(d, 16);
  EXPECT_NE(last_error_text().find("70000"), std::string::npos);
  // Dynamic shared memory: 48 KiB unless the kernel was given more, at most 227 KiB. (The opt-in is the process's
  // for the kernel's lifetime: reset first, so that the test also holds when repeated.)
  ASSERT_EQ(cudaFuncSetAttribute(read_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 0), cudaSuccess);
  BSIM_LAUNCH(read_shared, 1, 32, 64 * 1024, nullptr)(d, 16);
  const std::string refused = last_error_text();
  EXPECT_NE(refused.find("read_shared: 65536 bytes of dynamic shared memory, 49152 allowed"), std::string::npos)
      << refused;
  EXPECT_EQ(cudaFuncSetAttribute(read_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
            cudaErrorInvalidValue);
  cudaGetLastError();
  ASSERT_EQ(cudaFuncSetAttribute(read_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), cudaSuccess);
  BSIM_LAUNCH(read_shared, 1, 32, 64 * 1024, nullptr)(d, 16);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(d);
}

// Streams (BSIM_EMULATION_STREAMS=deferred, the default): work waits in its stream until the host forces it, so
// host code that reads before synchronising, or two streams ordered by luck, read old memory every time.
namespace {
bool streams_deferred() {
  const char* v = std::getenv("BSIM_EMULATION_STREAMS");
  return !v || std::string(v) == "deferred";
}
struct TestStream {
  cudaStream_t s = nullptr;
  explicit TestStream(unsigned flags = cudaStreamNonBlocking) { cudaStreamCreateWithFlags(&s, flags); }
  ~TestStream() { cudaStreamDestroy(s); }
};
std::vector<float> read_back(const float* d, int n) {
  std::vector<float> h(size_t(n), 0.0f);
  EXPECT_EQ(cudaMemcpy(h.data(), d, size_t(n) * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}
}  // namespace

TEST(EmulatedCudaStreams, AResultReadBeforeItsStreamIsSynchronisedIsNotThereYet) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  const int n = 64;
  float* d = device_alloc<float>(n);
  TestStream a;
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(d, n, 3.0f);
  // cudaMemcpy is on the legacy default stream, which does not wait for a non-blocking stream.
  EXPECT_TRUE(std::isnan(read_back(d, n)[0])) << "the kernel ran before its stream was synchronised";
  ASSERT_EQ(cudaStreamSynchronize(a.s), cudaSuccess);
  EXPECT_EQ(read_back(d, n), std::vector<float>(n, 3.0f));
  cudaFree(d);
}

TEST(EmulatedCudaStreams, AStreamWaitsForAnEventAsRecordedWhenItWaits) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  const int n = 64;
  float* x = device_alloc<float>(n);
  float* y = device_alloc<float>(n);
  TestStream a, b;
  cudaEvent_t e = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
  // Without a wait, b's kernel reads x before a's fills it.
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(x, n, 1.0f);
  BSIM_LAUNCH(add_one, 1, 32, 0, b.s)(x, y, n);
  ASSERT_EQ(cudaStreamSynchronize(b.s), cudaSuccess);
  EXPECT_TRUE(std::isnan(read_back(y, n)[0]));
  ASSERT_EQ(cudaStreamSynchronize(a.s), cudaSuccess);
  // With it, synchronising b alone runs a's work up to the record.
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(x, n, 5.0f);
  ASSERT_EQ(cudaEventRecord(e, a.s), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(b.s, e, 0), cudaSuccess);
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(x, n, 7.0f);  // after the record: not waited for
  ASSERT_EQ(cudaEventRecord(e, a.s), cudaSuccess);  // a later record does not move the wait
  BSIM_LAUNCH(add_one, 1, 32, 0, b.s)(x, y, n);
  ASSERT_EQ(cudaStreamSynchronize(b.s), cudaSuccess);
  EXPECT_EQ(read_back(y, n), std::vector<float>(n, 6.0f));
  ASSERT_EQ(cudaEventSynchronize(e), cudaSuccess);  // the second record: a's last fill has run
  EXPECT_EQ(read_back(x, n), std::vector<float>(n, 7.0f));
  cudaEventDestroy(e);
  cudaFree(x), cudaFree(y);
}

// cudaMemset and a cudaMemcpy from pageable memory to the device return before they are done and go to the
// legacy default stream: a blocking stream's later work sees them, a non-blocking stream's need not.
TEST(EmulatedCudaStreams, SynchronousLookingMemsetAndUploadOrderOnlyTheBlockingStreams) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  const int n = 64;
  float* x = device_alloc<float>(n);
  float* y = device_alloc<float>(n);
  TestStream nonblocking, blocking(0);
  const std::vector<float> ones(n, 1.0f);
  for (cudaStream_t s : {nonblocking.s, blocking.s}) {
    ASSERT_EQ(cudaMemset(x, 0, n * 4), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(y, ones.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    BSIM_LAUNCH(add_one, 1, 32, 0, s)(x, x, n);
    BSIM_LAUNCH(add_one, 1, 32, 0, s)(y, y, n);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    const std::vector<float> gx = read_back(x, n), gy = read_back(y, n);  // these run the legacy stream's work
    if (s == blocking.s) {
      EXPECT_EQ(gx, std::vector<float>(n, 1.0f));
      EXPECT_EQ(gy, std::vector<float>(n, 2.0f));
    } else {  // the kernels read the memory as it was; the memset and the upload landed afterwards
      EXPECT_EQ(gx, std::vector<float>(n, 0.0f));
      EXPECT_EQ(gy, std::vector<float>(n, 1.0f));
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  // The other way: the legacy stream's copy to the host waits for a blocking stream's earlier work.
  BSIM_LAUNCH(fill, 1, 32, 0, blocking.s)(x, n, 9.0f);
  EXPECT_EQ(read_back(x, n), std::vector<float>(n, 9.0f));
  BSIM_LAUNCH(fill, 1, 32, 0, nonblocking.s)(x, n, 4.0f);
  EXPECT_EQ(read_back(x, n), std::vector<float>(n, 9.0f));  // a non-blocking stream's: not
  ASSERT_EQ(cudaStreamSynchronize(nonblocking.s), cudaSuccess);
  cudaFree(x), cudaFree(y);
}

// cudaMemcpyAsync from pageable memory takes the bytes at the call; from pinned memory, when the copy runs:
// a host that refills a pinned staging buffer before the copy is done sends the new contents.
TEST(EmulatedCudaStreams, APinnedBufferIsReadWhenTheCopyRunsAPageableOneAtTheCall) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  const int n = 16;
  float* d = device_alloc<float>(2 * n);
  TestStream a;
  std::vector<float> pageable(n, 1.0f);
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), n * 4), cudaSuccess);
  std::fill(pinned, pinned + n, 1.0f);
  ASSERT_EQ(cudaMemcpyAsync(d, pageable.data(), n * 4, cudaMemcpyHostToDevice, a.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(d + n, pinned, n * 4, cudaMemcpyHostToDevice, a.s), cudaSuccess);
  std::fill(pageable.begin(), pageable.end(), 2.0f);
  std::fill(pinned, pinned + n, 2.0f);
  ASSERT_EQ(cudaStreamSynchronize(a.s), cudaSuccess);
  const std::vector<float> got = read_back(d, 2 * n);
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[n], 2.0f);
  // A copy to pageable memory returns once done (its stream's earlier work included); to pinned memory, not.
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(d, n, 9.0f);
  ASSERT_EQ(cudaMemcpyAsync(pageable.data(), d, n * 4, cudaMemcpyDeviceToHost, a.s), cudaSuccess);
  EXPECT_EQ(pageable[0], 9.0f);
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(d, n, 4.0f);
  ASSERT_EQ(cudaMemcpyAsync(pinned, d, n * 4, cudaMemcpyDeviceToHost, a.s), cudaSuccess);
  EXPECT_EQ(pinned[0], 2.0f);
  ASSERT_EQ(cudaStreamSynchronize(a.s), cudaSuccess);
  EXPECT_EQ(pinned[0], 4.0f);
  // Host to host is done at the call; cudaMemcpyDefault takes its direction from where the pointers lie.
  std::vector<float> other(n, 0.0f);
  ASSERT_EQ(cudaMemcpyAsync(other.data(), pinned, n * 4, cudaMemcpyHostToHost, a.s), cudaSuccess);
  EXPECT_EQ(other[0], 4.0f);
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(d, n, 6.0f);
  ASSERT_EQ(cudaMemcpyAsync(other.data(), d, n * 4, cudaMemcpyDefault, a.s), cudaSuccess);  // to pageable memory
  EXPECT_EQ(other[0], 6.0f);
  cudaFreeHost(pinned);
  cudaFree(d);
}

TEST(EmulatedCudaStreams, ElapsedTimeBeforeTheRecordsRanIsNotReady) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  TestStream a;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&e0, cudaEventDefault), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&e1, cudaEventDefault), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(e0, a.s), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(e1, a.s), cudaSuccess);
  float ms = -1;
  EXPECT_EQ(cudaEventElapsedTime(&ms, e0, e1), cudaErrorNotReady);
  cudaGetLastError();
  ASSERT_EQ(cudaEventSynchronize(e1), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, e0, e1), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  cudaEventDestroy(e0), cudaEventDestroy(e1);
}

// A fault in queued work reaches the call that ran it; the stream's later work is dropped, as a fault ends
// the device's context.
TEST(EmulatedCudaStreams, AFaultInQueuedWorkReachesTheSynchronisingCall) {
  if (!streams_deferred()) GTEST_SKIP() << "BSIM_EMULATION_STREAMS=immediate";
  const int n = 64;
  float* d = device_alloc<float>(n);
  TestStream a;
  BSIM_LAUNCH(early_return_before_barrier, 1, 64, 0, a.s)(d, 40);  // queued, not run: no error yet
  BSIM_LAUNCH(fill, 1, 32, 0, a.s)(d, n, 8.0f);
  EXPECT_THROW(cudaStreamSynchronize(a.s), bsim::emu::KernelFault);
  ASSERT_EQ(cudaStreamSynchronize(a.s), cudaSuccess);
  EXPECT_NE(read_back(d, n)[63], 8.0f) << "the work after the fault ran";
  cudaFree(d);
}

// The device refuses a float2 access at an address that is not a multiple of 8 ("misaligned address"); x86 does
// not. The sanitized build (bsim_kernels_emulated_asan) stops there, as the device would.
TEST(EmulatedCuda, AMisalignedFloat2AccessStopsTheSanitizedBuild) {
  float* d = device_alloc<float>(64);
  ASSERT_EQ(cudaMemset(d, 0, 64 * 4), cudaSuccess);
  const auto run = [&](int offset) {
    BSIM_LAUNCH(read_pairs, 1, 8, 0, nullptr)(d, offset, d + 32);
    return ran();
  };
  EXPECT_EQ(run(2), cudaSuccess);
#if defined(BSIM_SANITIZE_ALIGNMENT)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(run(1), "misaligned address");
#else
  std::printf("(the misaligned case is checked by the sanitized build of this test)\n");
#endif
  cudaFree(d);
}

// New device memory and each block's shared memory hold NaN: a kernel that reads either before writing it
// shows up in its results, as it may on the device.
TEST(EmulatedCuda, MemoryNeverWrittenReadsAsNaN) {
  const int n = 100, blocks = 2;
  float* d = device_alloc<float>(size_t(n) * blocks);
  std::vector<float> fresh(size_t(n) * blocks, 0.0f);
  ASSERT_EQ(cudaMemcpy(fresh.data(), d, fresh.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(std::isnan(fresh[0]) && std::isnan(fresh.back()));
  ASSERT_EQ(cudaMemset(d, 0, fresh.size() * 4), cudaSuccess);
  BSIM_LAUNCH(read_shared, blocks, 32, n * sizeof(float), nullptr)(d, n);
  std::vector<float> out(fresh.size(), 0.0f);
  ASSERT_EQ(cudaMemcpy(out.data(), d, out.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (float v : out) ASSERT_TRUE(std::isnan(v));
  // Static shared arrays too, in every block (one static copy serves them all: without a refill per block the
  // second block would find the first block's 1.0f).
  BSIM_LAUNCH(read_static_shared, blocks, 32, 0, nullptr)(d);
  ASSERT_EQ(cudaMemcpy(out.data(), d, size_t(blocks) * 32 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int i = 0; i < blocks * 32; ++i) ASSERT_TRUE(std::isnan(out[size_t(i)])) << "output " << i;
  cudaFree(d);
}

TEST(EmulatedCuda, CopiesStayInsideTheirAllocationAndGoTheWayTheySay) {
  float* d = device_alloc<float>(100);
  std::vector<float> h(200, 1.0f);
  EXPECT_EQ(cudaMemcpy(d, h.data(), 100 * 4, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d + 1, h.data(), 100 * 4, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_NE(last_error_text().find("runs past the end of its device allocation"), std::string::npos);
  EXPECT_EQ(cudaMemcpy(h.data(), d, 400, cudaMemcpyHostToDevice), cudaErrorInvalidDevicePointer);
  EXPECT_NE(last_error_text().find("is not device memory"), std::string::npos);
  EXPECT_EQ(cudaMemcpy(d, h.data(), 400, cudaMemcpyDeviceToHost), cudaErrorInvalidMemcpyDirection);
  cudaGetLastError();
  EXPECT_EQ(cudaMemset2DAsync(d, 40 * 4, 0, 10 * 4, 3), cudaSuccess);  // rows 0, 40, 80: the last ends at 90
  EXPECT_EQ(cudaMemset2DAsync(d, 40 * 4, 0, 30 * 4, 3), cudaErrorInvalidValue);  // the last would end at 110
  cudaGetLastError();
  cudaFree(d);
}

TEST(EmulatedCuda, DeviceMemoryIsFiniteAndSaysSo) {
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, total_b + 1), cudaErrorMemoryAllocation);
  EXPECT_EQ(p, nullptr);
  EXPECT_NE(last_error_text().find("out of memory"), std::string::npos);
  size_t free_after = 0;
  cudaMemGetInfo(&free_after, &total_b);
  EXPECT_EQ(free_after, free_b);  // the failed request took nothing
}

// cuFFT's batched real transforms: FFTW's results in cuFFT's layout (basic layout without embeddings), and an
// execution whose batch runs past its allocation fails.
TEST(EmulatedCuda, CufftTransformsRowsAndRefusesToRunPastAnAllocation) {
  const int n = 60, nb = n / 2 + 1, batch = 3;
  std::vector<float> x(size_t(batch) * n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i)) + float(i % 7);
  float* dx = device_alloc<float>(x.size());
  float2* dX = device_alloc<float2>(size_t(batch) * nb);
  ASSERT_EQ(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  cufftHandle plan = 0;
  int size = n;
  ASSERT_EQ(cufftPlanMany(&plan, 1, &size, nullptr, 1, n, nullptr, 1, nb, CUFFT_R2C, batch), CUFFT_SUCCESS);
  ASSERT_EQ(cufftExecR2C(plan, dx, dX), CUFFT_SUCCESS);
  std::vector<std::complex<float>> got(size_t(batch) * nb), want(nb);
  ASSERT_EQ(cudaMemcpy(got.data(), dX, got.size() * 8, cudaMemcpyDeviceToHost), cudaSuccess);
  const bsim::RealFft fft(n);
  bsim::FloatVec row(n);
  for (int b = 0; b < batch; ++b) {
    std::copy_n(x.begin() + b * n, n, row.begin());
    fft.forward(row.data(), want.data());
    for (int k = 0; k < nb; ++k) ASSERT_LT(std::abs(got[size_t(b) * nb + k] - want[size_t(k)]), 1e-4f);
  }
  EXPECT_EQ(cufftExecR2C(plan, dx + 1, dX), CUFFT_EXEC_FAILED);  // the last row would end one float late
  EXPECT_EQ(cufftDestroy(plan), CUFFT_SUCCESS);
  EXPECT_EQ(cufftExecR2C(plan, dx, dX), CUFFT_INVALID_PLAN);
  cudaFree(dx), cudaFree(dX);
}
