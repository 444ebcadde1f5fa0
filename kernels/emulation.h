// Lets kernel headers (kernels/*.cuh that hold device code only) compile as plain C++, so that CPU tests run
// the kernel bodies on the CPU. Two ways to launch:
//  - emu::launch / launch3: one thread per block, blocks in order. Kernels written in the strided-loop style
//    (for i = threadIdx.x; i < n; i += blockDim.x, phases separated by __syncthreads) then compute what the GPU
//    computes, up to float rounding.
//  - emu::launch_blocks: every thread of every block, as the GPU's launch shape says. Each thread of a block
//    that meets a __syncthreads runs as a fiber (Boost.Context) that stops there until every thread of the block has
//    arrived; a barrier that some threads of the block never reach (they returned) is an error, as it is
//    undefined behaviour on the device. The emulated CUDA runtime (kernels/emulated_runtime/) launches this
//    way, so the host code's grids, block sizes and shared-memory sizes are exercised too.
// Blocks and threads run one at a time, under one lock per process, first to last or (BSIM_EMULATION_ORDER=
// reverse) last to first: a race shows as results that differ between the two orders, but races are not
// detected as such (compute-sanitizer's racecheck does that on the device), nor is occupancy modelled. Under
// nvcc this header is empty.
#pragma once
#if !defined(__CUDACC__)
#include <math.h>  // the C math functions (sinf, hypot, ...) in the global namespace, as device code calls them
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// Fibers without a system call per switch (ucontext's swapcontext saves and restores the signal mask: 1.2
// million rt_sigprocmask calls in the emulated teacher test alone, 40 % of the emulated tests' time).
#include <boost/context/fiber.hpp>
#include <boost/context/preallocated.hpp>

// AddressSanitizer follows the stack switches of the fibers below when told of them (else it reports false
// errors on the fibers' stacks): the emulated backend's ASan build checks every kernel's memory accesses.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define BSIM_FIBER_SWITCH_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define BSIM_FIBER_SWITCH_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define BSIM_FIBER_SWITCH_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define BSIM_FIBER_SWITCH_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
// Static shared arrays are declared with BSIM_SHARED (below), not __shared__, so that the emulation can refill
// them for every block; __shared__ itself is left undefined here, and a kernel that uses it fails to compile.

// CUDA's float2 is 8-byte aligned (a float2 access to an address that is not faults on the device with
// "misaligned address"); the same here, so that the sanitized build's alignment check sees what the device would.
struct alignas(8) float2 {
  float x, y;
};
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2 as CUDA lays it out");
inline float2 make_float2(float x, float y) { return {x, y}; }
struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};
// The launch-shape type of the CUDA runtime (every extent defaults to 1).
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace bsim::emu {
inline thread_local EmuDim3 blockIdx, threadIdx, blockDim{1, 1, 1}, gridDim{1, 1, 1};
inline std::vector<unsigned char> dynamic_shared(1 << 20);
constexpr size_t kDefaultDynamicShared = 1 << 20;

// The kernels' static shared arrays (BSIM_SHARED): one static copy each, which every block would otherwise
// inherit from the block before it (and the first block find zeroed), hiding a read before a write. Each is
// filled with 0xFF bytes (NaN floats, -1 ints) when first declared and again whenever a block starts, as the
// device promises nothing about shared memory.
inline std::vector<std::pair<void*, size_t>>& static_shared() {
  static std::vector<std::pair<void*, size_t>> arrays;
  return arrays;
}
inline void refill_static_shared() {
  for (auto [p, n] : static_shared()) std::memset(p, 0xFF, n);
}
inline bool register_static_shared(void* p, size_t n) {
  static_shared().emplace_back(p, n);
  std::memset(p, 0xFF, n);
  return true;
}

// The order in which launch_blocks runs the blocks of a grid and the threads of each phase of a block: first
// to last, or last to first. A kernel whose result depends on it has a race (a thread reads what another
// writes in the same phase, or one block reads another's output): the device promises neither order. The
// default comes from BSIM_EMULATION_ORDER (forward or reverse); the ASan test runs in reverse.
enum class Order { forward, reverse };
inline Order& run_order() {
  static Order o = [] {
    const char* v = std::getenv("BSIM_EMULATION_ORDER");
    const std::string s = v ? v : "forward";
    if (s != "forward" && s != "reverse")
      throw std::invalid_argument("BSIM_EMULATION_ORDER='" + s + "': use forward or reverse (or leave it unset)");
    return s == "reverse" ? Order::reverse : Order::forward;
  }();
  return o;
}

// Every launch holds this lock: the kernels' static shared arrays and the fibers are one set per process.
inline std::recursive_mutex& launch_mutex() {
  static std::recursive_mutex m;
  return m;
}

// Runs kernel(args...) over a (gx, gy, gz) grid, one thread per block, blocks in order.
template <typename Kernel, typename... Args>
void launch3(unsigned gx, unsigned gy, unsigned gz, Kernel kernel, Args... args) {
  std::lock_guard<std::recursive_mutex> lock(launch_mutex());
  gridDim = {gx, gy, gz};
  blockDim = {1, 1, 1};
  threadIdx = {0, 0, 0};
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x) {
        blockIdx = {x, y, z};
        refill_static_shared();
        kernel(args...);
      }
}
template <typename Kernel, typename... Args>
void launch(unsigned gx, unsigned gy, Kernel kernel, Args... args) {
  launch3(gx, gy, 1u, kernel, args...);
}

// A kernel did something the device would not run correctly (a barrier not every thread reaches).
class KernelFault : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// The threads of one block. The first thread to run is a fiber: if it meets a barrier, every thread becomes one
// and they are resumed phase by phase; if it ends without one, the others run one after another on the caller's
// stack (a barrier met there is divergent), which keeps kernels without barriers cheap.
class BlockRunner {
 public:
  // Runs body() once per thread of a block of n threads (threadIdx set from t = 0 .. n - 1, x fastest).
  void run(unsigned n, const std::function<void()>& body, const char* kernel) {
    kernel_ = kernel;
    if (n == 1) {
      threadIdx = {0, 0, 0};
      body();
      return;
    }
    struct Reset {  // whatever happens, the next __syncthreads outside this block is a single thread's
      BlockRunner& r;
      ~Reset() {
        r.abandon_waiting();  // after an error: no thread stays suspended on a stack the next block reuses
        r.n_ = 1, r.direct_ = false;
      }
    } reset{*this};
    n_ = n, body_ = &body, error_ = nullptr;
    if (fibers_.size() < n) fibers_.resize(n);
    const bool reverse = run_order() == Order::reverse;
    const auto nth = [&](unsigned k) { return reverse ? n - 1 - k : k; };  // the k-th thread to run
    // The first thread as a fiber: if it ends without a barrier, the kernel has none on this path (any other
    // thread meeting one would be a divergent barrier), and the rest run directly, cheaply.
    start(nth(0));
    rethrow();
    if (fibers_[nth(0)].state == kDone) {
      direct_ = true;
      for (unsigned k = 1; k < n; ++k) {
        set_thread(nth(k));
        body();
      }
      return;
    }
    for (unsigned k = 1; k < n; ++k) {
      start(nth(k));
      rethrow();
    }
    for (;;) {
      unsigned waiting = 0, done = 0;
      for (unsigned t = 0; t < n; ++t) (fibers_[t].state == kDone ? done : waiting) += 1;
      if (waiting == 0) break;
      if (done > 0)
        throw KernelFault(std::string(kernel_) + ": " + std::to_string(waiting) + " of " + std::to_string(n) +
                          " threads of block (" + std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) +
                          ", " + std::to_string(blockIdx.z) + ") wait at __syncthreads after the others returned " +
                          "(a barrier in divergent code: undefined on the device)");
      for (unsigned k = 0; k < n; ++k) {
        resume(nth(k));
        rethrow();
      }
    }
  }

  // __syncthreads(): the calling fiber waits until the whole block has arrived.
  void barrier() {
    if (n_ <= 1) return;
    if (direct_)
      throw KernelFault(std::string(kernel_) + ": thread " + std::to_string(threadIdx.x) + " of block (" +
                        std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) +
                        ") meets __syncthreads that the block's first thread to run never reached (a barrier in divergent code)");
    Fiber& f = fibers_[current_];
    f.state = kWaiting;
    BSIM_FIBER_SWITCH_START(&f.fake_stack, caller_bottom_, caller_size_);
    caller_ = std::move(caller_).resume();
    BSIM_FIBER_SWITCH_FINISH(f.fake_stack, &caller_bottom_, &caller_size_);
    if (abandoning_) throw Abandoned{};
  }

 private:
  static constexpr size_t kStackBytes = 256 * 1024;
  enum State { kRunning, kWaiting, kDone };
  struct Fiber {
    boost::context::fiber thread;   // the thread, while it waits at a barrier
    std::unique_ptr<char[]> stack;  // uninitialised: only the pages a thread touches are ever mapped
    State state = kDone;
    void* fake_stack = nullptr;  // AddressSanitizer's, while the fiber is switched out
  };
  struct Abandoned {};  // thrown at the barrier of a thread resumed only to end it (abandon_waiting)
  // The fibers run on the runner's own stacks, reused block after block: nothing to free when one ends.
  struct OwnStack {
    void deallocate(boost::context::stack_context&) noexcept {}
  };

  void set_thread(unsigned t) {
    threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
  }
  // The fiber's body: runs the kernel for the current thread, then returns to the runner.
  boost::context::fiber run_thread(boost::context::fiber&& runner) {
    caller_ = std::move(runner);
    BSIM_FIBER_SWITCH_FINISH(nullptr, &caller_bottom_, &caller_size_);
    try {
      (*body_)();
    } catch (const Abandoned&) {
    } catch (...) {
      error_ = std::current_exception();
    }
    fibers_[current_].state = kDone;
    BSIM_FIBER_SWITCH_START(nullptr, caller_bottom_, caller_size_);  // this fiber ends
    return std::move(caller_);
  }
  void start(unsigned t) {
    Fiber& f = fibers_[t];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    boost::context::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = f.stack.get() + kStackBytes;  // stacks grow down: the top
    f.thread = boost::context::fiber(std::allocator_arg, boost::context::preallocated(sc.sp, sc.size, sc), OwnStack{},
                                     [this](boost::context::fiber&& runner) { return run_thread(std::move(runner)); });
    f.state = kRunning;
    switch_to(t);
  }
  void resume(unsigned t) {
    Fiber& f = fibers_[t];
    if (f.state != kWaiting) return;
    f.state = kRunning;
    switch_to(t);
  }
  void switch_to(unsigned t) {
    Fiber& f = fibers_[t];
    current_ = t;
    set_thread(t);
    void* caller_fake_stack = nullptr;
    BSIM_FIBER_SWITCH_START(&caller_fake_stack, f.stack.get(), kStackBytes);
    f.thread = std::move(f.thread).resume();  // back here at the thread's next barrier (or its end: empty)
    BSIM_FIBER_SWITCH_FINISH(caller_fake_stack, nullptr, nullptr);
  }
  // Ends every thread still waiting at a barrier (a block stopped by an error): each resumes, its barrier
  // throws Abandoned, and its stack unwinds to run_thread.
  void abandon_waiting() {
    abandoning_ = true;
    for (unsigned t = 0; t < fibers_.size(); ++t)
      if (fibers_[t].state == kWaiting) resume(t);
    abandoning_ = false;
    error_ = nullptr;
  }
  void rethrow() {
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  std::vector<Fiber> fibers_;
  boost::context::fiber caller_;  // while a thread runs: the runner, to return to
  const std::function<void()>* body_ = nullptr;
  std::exception_ptr error_;
  const char* kernel_ = "";
  const void* caller_bottom_ = nullptr;  // the caller's stack, for AddressSanitizer's switches back
  size_t caller_size_ = 0;
  unsigned n_ = 1, current_ = 0;
  bool direct_ = false, abandoning_ = false;
};

inline BlockRunner& block_runner() {
  static BlockRunner r;  // used under launch_mutex() only
  return r;
}

// Runs kernel(args...) as a CUDA launch of `grid` blocks of `block` threads with `shared_bytes` of dynamic
// shared memory: every thread runs, barriers synchronise the block's threads, and the dynamic shared memory
// is exactly the size asked for (a read past it is a heap overflow that AddressSanitizer reports) and holds
// 0xFF bytes (NaN floats) when each block starts, as the device promises nothing about it. Arguments are
// converted to the kernel's parameter types once; each thread receives its own copy, as on the device.
template <typename... Params, typename... Args>
void launch_blocks(dim3 grid, dim3 block, size_t shared_bytes, void (*kernel)(Params...), const char* name,
                   Args&&... args) {
  std::lock_guard<std::recursive_mutex> lock(launch_mutex());
  std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, params); };
  std::vector<unsigned char>(std::max<size_t>(shared_bytes, 1)).swap(dynamic_shared);
  // Afterwards (also after an error), device code called directly runs as one thread again, thread 0: a stale
  // threadIdx made its strided loops skip the first items.
  struct Restore {
    ~Restore() {
      std::vector<unsigned char>(kDefaultDynamicShared).swap(dynamic_shared);
      blockDim = {1, 1, 1};
      threadIdx = {0, 0, 0};
    }
  } restore;
  gridDim = {grid.x, grid.y, grid.z};
  blockDim = {block.x, block.y, block.z};
  const unsigned n = block.x * block.y * block.z;
  BlockRunner& runner = block_runner();
  const bool reverse = run_order() == Order::reverse;
  for (unsigned zk = 0; zk < grid.z; ++zk)
    for (unsigned yk = 0; yk < grid.y; ++yk)
      for (unsigned xk = 0; xk < grid.x; ++xk) {
        blockIdx = reverse ? EmuDim3{grid.x - 1 - xk, grid.y - 1 - yk, grid.z - 1 - zk} : EmuDim3{xk, yk, zk};
        std::memset(dynamic_shared.data(), 0xFF, dynamic_shared.size());
        refill_static_shared();
        runner.run(n, body, name);
      }
}
}  // namespace bsim::emu

using bsim::emu::blockDim;
using bsim::emu::blockIdx;
using bsim::emu::gridDim;
using bsim::emu::threadIdx;
inline void __syncthreads() { bsim::emu::block_runner().barrier(); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline void sincospif(float x, float* s, float* c) {  // sin and cos of pi x
  *s = float(std::sin(M_PI * double(x))), *c = float(std::cos(M_PI * double(x)));
}
inline float sinpif(float x) { return float(std::sin(M_PI * double(x))); }  // sin of pi x
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r = (r << 1) | ((x >> i) & 1u);
  return r;
}
template <typename T>
inline T atomicAdd(T* p, T v) {  // int, float, double
  const T old = *p;
  *p += v;
  return old;
}
// Rounding intrinsics (the host rounds each operation to nearest already) and float16 by the CPU's conversion
// (io/shard.h; the tests link bsim_io).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
namespace bsim {
uint16_t float_to_half(float f);
}
struct __half {
  uint16_t bits;
};
inline __half __float2half_rn(float f) { return {bsim::float_to_half(f)}; }
#define BSIM_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(bsim::emu::dynamic_shared.data())
// BSIM_SHARED(float, taps, [4][9]) is `__shared__ float taps[4][9]` on the device; here a static array that
// every block finds full of 0xFF bytes (blocks run one at a time: one copy serves each in turn).
#define BSIM_SHARED(type, name, ...)    \
  static type name __VA_ARGS__;         \
  [[maybe_unused]] static const bool name##_registered = ::bsim::emu::register_static_shared(&name, sizeof(name))
#define BSIM_UNROLL
#else
#define BSIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define BSIM_SHARED(type, name, ...) __shared__ type name __VA_ARGS__
#define BSIM_UNROLL _Pragma("unroll")
#endif
