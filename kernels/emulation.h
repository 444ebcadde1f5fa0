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
// reverse) last to first: a race may show as results that differ between the two orders. Built with
// -fsanitize=thread, races are detected as such (the CPU's counterpart of compute-sanitizer's racecheck, and
// more: global memory, and blocks): ThreadSanitizer sees each thread of a block as a fiber of its own, ordered
// against the block's other threads only by its barriers and not against the block run before it, so that two
// threads touching one address between the same two barriers, or in two blocks run one after the other, one
// writing, is reported whichever order they ran in (BlockRunner says what it cannot see). Occupancy is not
// modelled. Under nvcc this header is empty.
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
#include <type_traits>
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

// ThreadSanitizer (the _tsan build): each thread of a block runs in a fiber context of its own, switched to
// without ordering (no_sync), so that only the block's start, its barriers and its end order the threads.
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin();  // exported by libtsan, not declared in GCC's header
extern "C" void __tsan_ignore_thread_end();
#define BSIM_TSAN 1
#else
#define BSIM_TSAN 0
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

// ThreadSanitizer's hooks (no-ops in other builds); BlockRunner below says how they are used.
inline void tsan_ignore_begin() {  // this context's accesses go unchecked and unrecorded until tsan_ignore_end
#if BSIM_TSAN
  __tsan_ignore_thread_begin();
#endif
}
inline void tsan_ignore_end() {
#if BSIM_TSAN
  __tsan_ignore_thread_end();
#endif
}
inline void tsan_release([[maybe_unused]] void* sync) {
#if BSIM_TSAN
  __tsan_release(sync);
#endif
}
inline void tsan_acquire([[maybe_unused]] void* sync) {
#if BSIM_TSAN
  __tsan_acquire(sync);
#endif
}
inline void tsan_switch_to([[maybe_unused]] void* context) {  // without ordering the two contexts
#if BSIM_TSAN
  __tsan_switch_to_fiber(context, __tsan_switch_to_fiber_no_sync);
#endif
}
// The kernels' static shared arrays (BSIM_SHARED): one static copy each, which every block would otherwise
// inherit from the block before it (and the first block find zeroed), hiding a read before a write. Each is
// filled with 0xFF bytes (NaN floats, -1 ints) when first declared and again whenever a block starts, as the
// device promises nothing about shared memory.
inline std::vector<std::pair<void*, size_t>>& static_shared() {
  static std::vector<std::pair<void*, size_t>> arrays;
  return arrays;
}
inline bool register_static_shared(void* p, size_t n) {
  static_shared().emplace_back(p, n);
  std::memset(p, 0xFF, n);
  return true;
}
// Under ThreadSanitizer each block's shared memory is allocated anew instead, while accesses are ignored (which
// makes it forget what earlier blocks' threads did there: on the device each block has its own), the static
// arrays when a block's first thread declares them. The list is bookkeeping, hidden from it.
inline std::vector<std::pair<const void*, std::unique_ptr<unsigned char[]>>>& block_static_shared() {
  static std::vector<std::pair<const void*, std::unique_ptr<unsigned char[]>>> arrays;
  return arrays;
}
inline void* static_shared_of_block(const void* tag, size_t n) {
  tsan_ignore_begin();
  auto& arrays = block_static_shared();
  auto it = std::find_if(arrays.begin(), arrays.end(), [&](const auto& a) { return a.first == tag; });
  if (it == arrays.end()) {
    arrays.emplace_back(tag, std::make_unique<unsigned char[]>(n));
    it = arrays.end() - 1;
    std::memset(it->second.get(), 0xFF, n);
  }
  void* p = it->second.get();
  tsan_ignore_end();
  return p;
}
// A block's static shared arrays new: 0xFF bytes (NaN floats), as the device promises nothing.
inline void refill_static_shared() {
  tsan_ignore_begin();
  if (BSIM_TSAN) block_static_shared().clear();
  for (auto [p, n] : static_shared()) std::memset(p, 0xFF, n);
  tsan_ignore_end();
}
// And its dynamic shared memory too.
inline void new_block_shared() {
  tsan_ignore_begin();
  if (BSIM_TSAN) std::vector<unsigned char>(dynamic_shared.size()).swap(dynamic_shared);
  std::memset(dynamic_shared.data(), 0xFF, dynamic_shared.size());
  refill_static_shared();
  tsan_ignore_end();
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

// The threads of one block, each a fiber that lives on from block to block: it runs its thread's body, then
// waits for the next block. The first thread to run is resumed first: if it meets a barrier, every thread runs
// in its fiber, phase by phase; if it ends without one, the others run one after another on the caller's stack
// (a barrier met there is divergent), which keeps kernels without barriers cheap.
class BlockRunner {
 public:
  // Runs body() once per thread of a block of n threads (threadIdx set from t = 0 .. n - 1, x fastest).
  void run(unsigned n, const std::function<void()>& body, const char* kernel) {
    if (n == 1) {
      kernel_ = kernel;
      threadIdx = {0, 0, 0};
      body();
      return;
    }
    // What the caller did before (the kernel's arguments, shared memory filled) reaches every thread through
    // the block's start; from here until the block has ended, the runner's own bookkeeping is hidden from
    // ThreadSanitizer.
    tsan_begin_block();
    struct Reset {  // whatever happens, the next __syncthreads outside this block is a single thread's
      BlockRunner& r;
      ~Reset() {
        r.abandon_waiting();  // after an error: no thread stays suspended in the middle of a block
        r.n_ = 1, r.direct_ = false;
        r.tsan_end_block();
      }
    } reset{*this};
    kernel_ = kernel, n_ = n, body_ = &body, error_ = nullptr;
    if (BSIM_TSAN) pool_ ^= 1u;
    while (fibers().size() < n) fibers().push_back(std::make_unique<Fiber>());  // each stays where it is
    const bool reverse = run_order() == Order::reverse;
    const auto nth = [&](unsigned k) { return reverse ? n - 1 - k : k; };  // the k-th thread to run
    // If the first thread ends without a barrier, the kernel has none on this path (any other thread meeting
    // one would be a divergent barrier), and the rest run directly, cheaply. Not under ThreadSanitizer, which
    // can tell the threads apart only in fibers of their own.
    start(nth(0));
    rethrow();
    if (!BSIM_TSAN && fiber(nth(0)).state == kDone) {
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
      for (unsigned t = 0; t < n; ++t) (fiber(t).state == kDone ? done : waiting) += 1;
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

  // After the last block of a grid (or a fault): the caller continues after every thread of the grid.
  void end_grid() { tsan_acquire(&tsan_sync_[kEnd]); }

  // __syncthreads(): the calling fiber waits until the whole block has arrived.
  void barrier() {
    if (n_ <= 1) return;
    if (direct_)
      throw KernelFault(std::string(kernel_) + ": thread " + std::to_string(threadIdx.x) + " of block (" +
                        std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) +
                        ") meets __syncthreads that the block's first thread to run never reached (a barrier in divergent code)");
    tsan_ignore_begin();
    Fiber& f = fiber(current_);
    f.state = kWaiting;
    // Barriers alternate between two sync objects: every thread has passed barrier k before any reaches k + 1,
    // so a thread leaving barrier k acquires what the block did before k and nothing done after it.
    char* passed = &barrier_sync_[f.barriers_passed++ & 1u];
    tsan_release(passed);
    to_runner(f);
    tsan_acquire(passed);
    tsan_ignore_end();
    if (abandoning_) throw Abandoned{};
  }

 private:
  static constexpr size_t kStackBytes = 256 * 1024;
  enum State { kRunning, kWaiting, kDone };
  struct Fiber {
    boost::context::fiber thread;   // while suspended: at a barrier (kWaiting) or between blocks (kDone)
    std::unique_ptr<char[]> stack;  // uninitialised: only the pages a thread touches are ever mapped
    State state = kDone;
    void* fake_stack = nullptr;  // AddressSanitizer's, while the fiber is switched out
    void* tsan = nullptr;        // ThreadSanitizer's context for this thread (the _tsan build), and its name
    std::string name;
    unsigned barriers_passed = 0;
  };
  struct Abandoned {};  // thrown at the barrier of a thread resumed only to end it (abandon_waiting)
  // The fibers run on the runner's own stacks and never end (the runner lives as long as the process).
  struct OwnStack {
    void deallocate(boost::context::stack_context&) noexcept {}
  };

  void set_thread(unsigned t) {
    threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
  }
  // The fiber's body: runs the kernel for the thread the runner says (current_), block after block.
  boost::context::fiber thread_main(boost::context::fiber&& runner) {
    tsan_ignore_begin();  // at every switch, the fiber's own bookkeeping is hidden from ThreadSanitizer
    caller_ = std::move(runner);
    BSIM_FIBER_SWITCH_FINISH(nullptr, &caller_bottom_, &caller_size_);
    for (;;) {
      tsan_acquire(&tsan_sync_[kStart]);
      tsan_ignore_end();
      try {
        (*body_)();
      } catch (const Abandoned&) {
      } catch (...) {
        tsan_ignore_begin();
        error_ = std::current_exception();
        tsan_release(&tsan_sync_[kError]);
        tsan_ignore_end();
      }
      tsan_ignore_begin();
      Fiber& f = fiber(current_);
      f.state = kDone;
      tsan_release(&tsan_sync_[kEnd]);
      to_runner(f);  // until the next block
    }
  }
  void start(unsigned t) {
    Fiber& f = fiber(t);
    if (!f.thread) {  // the first block with this many threads
      if (!f.stack) f.stack.reset(new char[kStackBytes]);
#if BSIM_TSAN
      f.tsan = __tsan_create_fiber(0);
      f.name = "emulated GPU thread " + std::to_string(t) + " (linear index in its block; fiber set " +
               std::to_string(pool_) + ")";
      __tsan_set_fiber_name(f.tsan, f.name.c_str());  // how a report names it
#endif
      boost::context::stack_context sc;
      sc.size = kStackBytes;
      sc.sp = f.stack.get() + kStackBytes;  // stacks grow down: the top
      // Boost enters a new fiber once while making it: for ThreadSanitizer, in the fiber's own context.
      tsan_switch_to(f.tsan);
      tsan_ignore_begin();
      f.thread = boost::context::fiber(std::allocator_arg, boost::context::preallocated(sc.sp, sc.size, sc),
                                       OwnStack{},
                                       [this](boost::context::fiber&& runner) { return thread_main(std::move(runner)); });
      tsan_ignore_end();
      tsan_switch_to(runner_tsan_);
    }
    f.barriers_passed = 0;
    f.state = kRunning;
    switch_to(t);
  }
  void resume(unsigned t) {
    Fiber& f = fiber(t);
    if (f.state != kWaiting) return;
    f.state = kRunning;
    switch_to(t);
  }
  void switch_to(unsigned t) {
    Fiber& f = fiber(t);
    current_ = t;
    set_thread(t);
    void* caller_fake_stack = nullptr;
    BSIM_FIBER_SWITCH_START(&caller_fake_stack, f.stack.get(), kStackBytes);
    f.thread = jump(std::move(f.thread), f.tsan);  // back here at the thread's next barrier or its end
    BSIM_FIBER_SWITCH_FINISH(caller_fake_stack, nullptr, nullptr);
  }
  // From a fiber back to the runner, until the runner switches to it again.
  void to_runner(Fiber& f) {
    BSIM_FIBER_SWITCH_START(&f.fake_stack, caller_bottom_, caller_size_);
    caller_ = jump(std::move(caller_), runner_tsan_);
    BSIM_FIBER_SWITCH_FINISH(f.fake_stack, &caller_bottom_, &caller_size_);
  }
  // Every switch of stacks, both ways, goes through this one function: ThreadSanitizer keeps a call stack per
  // context, and a switch that entered a different number of functions after telling it than the resumed side
  // leaves would unbalance both.
  [[gnu::noinline]] static boost::context::fiber jump(boost::context::fiber&& to, [[maybe_unused]] void* tsan_context) {
    tsan_switch_to(tsan_context);
    return std::move(to).resume();
  }
  // Ends every thread still waiting at a barrier (a block stopped by an error): each resumes, its barrier
  // throws Abandoned, and its stack unwinds to thread_main, which waits for the next block.
  void abandon_waiting() {
    abandoning_ = true;
    for (unsigned t = 0; t < fibers().size(); ++t)
      if (fiber(t).state == kWaiting) resume(t);
    abandoning_ = false;
    error_ = nullptr;
  }
  void rethrow() {
    if (error_) {
      tsan_acquire(&tsan_sync_[kError]);  // the exception, as the thread that threw it made it
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  // ThreadSanitizer's view (all no-ops in other builds). The threads of a block are fibers that it sees as
  // threads, switched to without ordering them; what orders them is release and acquire on the sync objects
  // below: the caller's work before the grid reaches every thread through kStart; a block's barriers order its
  // threads (two fresh sync objects per block); and each thread's end reaches the caller only when the whole
  // grid has run (end_grid). The runner's own bookkeeping (which fiber runs, its state, threadIdx, blockIdx, a
  // block's shared memory filled) is hidden from it: only what the kernel does is checked. So within a block,
  // every race is reported, in whichever order the threads ran. Blocks run one after another on two sets of
  // fibers in turn, so a race between two blocks that ran one after the other is reported too; blocks further
  // apart share a set (one fiber runs thread t of every other block), whose history and barriers order the
  // earlier block's work before the later's, so a race between those may not be; nor one between blocks of a
  // single thread, which run on the caller's context, in order.
  enum TsanSync { kStart, kEnd, kError, kBarrier, kTsanSyncs = kBarrier + 2 };
  char tsan_sync_[kTsanSyncs] = {};
  char* barrier_sync_ = tsan_sync_ + kBarrier;
  void* runner_tsan_ = nullptr;
  void tsan_begin_block() {
    tsan_release(&tsan_sync_[kStart]);
    tsan_ignore_begin();
#if BSIM_TSAN
    runner_tsan_ = __tsan_get_current_fiber();
    barrier_sync_ = new char[2];  // fresh: no clock of an earlier block's barriers
#endif
  }
  void tsan_end_block() {
#if BSIM_TSAN
    delete[] barrier_sync_;  // ThreadSanitizer forgets a sync object when its memory is freed
    barrier_sync_ = tsan_sync_ + kBarrier;
#endif
    tsan_ignore_end();
  }

  // The fibers, thread t of a block in the t-th; under ThreadSanitizer two sets, for alternate blocks.
  std::vector<std::unique_ptr<Fiber>> pools_[2];
  unsigned pool_ = 0;
  std::vector<std::unique_ptr<Fiber>>& fibers() { return pools_[pool_]; }
  Fiber& fiber(unsigned t) { return *pools_[pool_][t]; }
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
  // Used under launch_mutex() only. Never destroyed: its fibers wait for the next block to the end.
  static BlockRunner& r = *new BlockRunner;
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
      block_runner().end_grid();
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
        tsan_ignore_begin();  // the threads of the block before may still read blockIdx, for ThreadSanitizer
        blockIdx = reverse ? EmuDim3{grid.x - 1 - xk, grid.y - 1 - yk, grid.z - 1 - zk} : EmuDim3{xk, yk, zk};
        tsan_ignore_end();
        new_block_shared();
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
inline T atomicAdd(T* p, T v) {  // int, float, double; atomic, so that ThreadSanitizer sees no race, as there is none
  if constexpr (std::is_integral_v<T>) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  } else {
    T old;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    T sum = old + v;
    while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) sum = old + v;
    return old;
  }
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
// every block finds full of 0xFF bytes (blocks run one at a time: one copy serves each in turn); under
// ThreadSanitizer, a reference to the block's own copy (static_shared_of_block).
#if BSIM_TSAN
#define BSIM_SHARED(type, name, ...)                                          \
  static const char name##_tag = 0;                                           \
  type(&name) __VA_ARGS__ = *static_cast<type(*) __VA_ARGS__>(              \
      ::bsim::emu::static_shared_of_block(&name##_tag, sizeof(type __VA_ARGS__)))
#else
#define BSIM_SHARED(type, name, ...)    \
  static type name __VA_ARGS__;         \
  [[maybe_unused]] static const bool name##_registered = ::bsim::emu::register_static_shared(&name, sizeof(name))
#endif
#define BSIM_UNROLL
#else
#define BSIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#define BSIM_SHARED(type, name, ...) __shared__ type name __VA_ARGS__
#define BSIM_UNROLL _Pragma("unroll")
#endif
