// The emulated CUDA runtime and cuFFT (see cuda_runtime.h for what is checked and what is not modelled).
#include <fftw3.h>

#include <chrono>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/emulated_runtime/cuda_runtime.h"
#include "kernels/emulated_runtime/cufft.h"
#include "sim/fft.h"

namespace {

constexpr size_t kDefaultSharedLimit = 48 * 1024;  // without cudaFuncSetAttribute
constexpr size_t kMaxSharedOptIn = 227 * 1024;     // sm_90 (H100, H200): 232,448 bytes per block

struct Allocation {
  size_t bytes;
  bool device;  // else pinned host memory
};

// Device and pinned allocations by start address; the lock also guards the kernels' attributes.
struct State {
  std::mutex m;
  std::map<uintptr_t, Allocation> allocations;
  std::map<const void*, size_t> shared_opt_in;
  size_t device_used = 0;
  size_t device_total = 0;
  State() {
    double g = 16.0;
    if (const char* gib = std::getenv("BSIM_EMULATED_DEVICE_GIB")) {
      char* end = nullptr;
      g = std::strtod(gib, &end);
      if (end == gib || *end != '\0' || !(g > 0))
        throw std::invalid_argument(std::string("BSIM_EMULATED_DEVICE_GIB='") + gib +
                                    "': give the emulated device's memory in GiB, a positive number (default 16)");
    }
    device_total = size_t(g * double(1ull << 30));
  }
};
State& state() {
  static State s;
  return s;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string last_detail;

cudaError_t fail(cudaError_t e, const std::string& detail) {
  last_error = e;
  last_detail = detail;
  return e;
}

// The allocation [p, p + bytes) lies in (a copy: another thread may free it), or none (no allocation holds p,
// or the range runs past its end).
std::optional<Allocation> inside(const void* p, size_t bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = s.allocations.upper_bound(a);
  if (it == s.allocations.begin()) return std::nullopt;
  --it;
  if (a + bytes > it->first + it->second.bytes) return std::nullopt;
  return it->second;
}
bool is_device(const void* p, size_t bytes) {
  const std::optional<Allocation> a = inside(p, bytes ? bytes : 1);
  return a && a->device;
}
bool starts_in_device_memory(const void* p) {
  const std::optional<Allocation> a = inside(p, 1);
  return a && a->device;
}

std::string describe(const void* p, size_t bytes) {
  char s[96];
  std::snprintf(s, sizeof s, "%zu bytes at %p", bytes, p);
  return s;
}

// Streams: a queue of operations each, run in order as late as the host lets them (cuda_runtime.h). Every
// queue and the running of it are under the launch lock (recursive: an operation that waits for another
// stream runs that stream's queue from inside its own).
bool deferred() {
  static const bool d = [] {
    const char* v = std::getenv("BSIM_EMULATION_STREAMS");
    const std::string s = v ? v : "deferred";
    if (s != "deferred" && s != "immediate")
      throw std::invalid_argument("BSIM_EMULATION_STREAMS='" + s + "': use deferred or immediate (or leave it unset)");
    return s == "deferred";
  }();
  return d;
}

}  // namespace

struct CUstream_st {
  bool blocking = true;  // ordered against the legacy default stream (cudaStreamNonBlocking: not)
  struct Op {
    uint64_t id;
    std::function<void()> run;
  };
  std::deque<Op> queue;
  uint64_t next_id = 1;  // ids count up from 1 per stream
  uint64_t done = 0;     // every op up to this id has run (or was dropped after a failure)
};

namespace {

CUstream_st g_legacy;               // stream 0
std::set<CUstream_st*> g_blocking;  // the other streams made without cudaStreamNonBlocking
std::set<CUstream_st*> g_streams;   // every live stream but the legacy one
// Destroyed streams stay allocated (empty): a wait queued elsewhere, or an event, may still name one.
std::vector<std::unique_ptr<CUstream_st>> g_destroyed;

CUstream_st* stream_of(cudaStream_t s) { return s ? s : &g_legacy; }
std::recursive_mutex& stream_mutex() { return bsim::emu::launch_mutex(); }

// The last id queued on q so far: what a wait recorded now must see done.
uint64_t position(CUstream_st* q) { return q->next_id - 1; }

// Runs stream q's operations up to id `upto`. An operation that throws (a kernel fault) drops the rest of its
// stream's queue, as a fault ends a device's context, and the exception reaches the call that forced it.
void run_until(CUstream_st* q, uint64_t upto) {
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  while (q->done < upto && !q->queue.empty()) {
    CUstream_st::Op op = std::move(q->queue.front());
    q->queue.pop_front();
    q->done = op.id;
    try {
      op.run();
    } catch (...) {
      q->queue.clear();
      q->done = position(q);
      throw;
    }
  }
}
void run_all(CUstream_st* q) { run_until(q, position(q)); }
void run_every_stream() {
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  run_all(&g_legacy);
  for (CUstream_st* q : std::set<CUstream_st*>(g_streams)) run_all(q);
}

// For the calls that run queued work but report no operation's failure of their own (cudaFree, cudaFreeHost,
// cudaStreamDestroy, cufftDestroy): the operation's exception becomes the last error and is said on stderr,
// where the device would make it sticky.
cudaError_t run_or_report(const std::function<void()>& f, const char* call);

// cudaFree (device) and cudaFreeHost (pinned): the pointer must start an allocation of that kind.
cudaError_t release(void* p, bool device, const char* call) {
  if (!p) return cudaSuccess;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  auto it = s.allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == s.allocations.end() || it->second.device != device)
    return fail(device ? cudaErrorInvalidDevicePointer : cudaErrorInvalidValue,
                std::string(call) + " of " + describe(p, 0) + ", not a " + (device ? "device" : "pinned") +
                    " allocation");
  if (device) s.device_used -= (it->second.bytes + 255) / 256 * 256;
  s.allocations.erase(it);
  std::free(p);
  return cudaSuccess;
}

// A copy's two sides must be what its kind says: device ones inside one allocation, host ones outside every
// device allocation.
cudaError_t check_side(const void* p, size_t bytes, bool want_device, const char* what, const char* call) {
  if (bytes == 0) return cudaSuccess;
  if (want_device && !is_device(p, bytes))
    return fail(starts_in_device_memory(p) ? cudaErrorInvalidValue : cudaErrorInvalidDevicePointer,
                std::string(call) + ": the " + what + " (" + describe(p, bytes) +
                    (starts_in_device_memory(p) ? ") runs past the end of its device allocation"
                                                : ") is not device memory"));
  if (!want_device && starts_in_device_memory(p))
    return fail(cudaErrorInvalidMemcpyDirection,
                std::string(call) + ": the " + what + " (" + describe(p, bytes) + ") is device memory");
  return cudaSuccess;
}

cudaError_t check_copy(void* dst, size_t dst_extent, const void* src, size_t src_extent, cudaMemcpyKind kind,
                       const char* call) {
  if (kind == cudaMemcpyDefault) return cudaSuccess;
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (cudaError_t e = check_side(dst, dst_extent, dst_dev, "destination", call)) return e;
  return check_side(src, src_extent, src_dev, "source", call);
}

// An event: its last record's place in a stream, and the time that record ran. Each record's operation holds
// the state (a record still queued when the event is destroyed runs harmlessly).
struct EventState {
  bool timing = true;
  CUstream_st* stream = nullptr;  // of the last record; null: never recorded
  uint64_t id = 0;                // that record's place in the stream
  uint64_t records = 0;           // records so far; an operation stamps the time only if it is still the last
  bool stamped = false;
  std::chrono::steady_clock::time_point at;
};

// cuFFT plans: the batch's layout, and FFTW plans made at the first execution with its arrays (FFTW_UNALIGNED:
// the rows start wherever the caller's offsets put them).
struct FftPlan {
  int n = 0, batch = 0, idist = 0, odist = 0;
  bool basic = false;             // no embeddings given: cuFFT's basic layout, whatever the distances say
  cudaStream_t stream = nullptr;  // cufftSetStream's: executions join its queue
  cufftType type = CUFFT_R2C;
  fftwf_plan out_of_place = nullptr, in_place = nullptr;
  ~FftPlan() {
    std::lock_guard<std::mutex> lock(bsim::fftw_planner_mutex());
    if (out_of_place) fftwf_destroy_plan(out_of_place);
    if (in_place) fftwf_destroy_plan(in_place);
  }
};
std::mutex g_fft_mutex;
std::map<int, std::unique_ptr<FftPlan>> g_ffts;
int g_next_fft = 1;

FftPlan* find_fft(cufftHandle h) {
  std::lock_guard<std::mutex> lock(g_fft_mutex);
  auto it = g_ffts.find(h);
  return it == g_ffts.end() ? nullptr : it->second.get();
}

cufftResult exec(cufftHandle h, void* in, void* out, cufftType type) {
  FftPlan* p = find_fft(h);
  if (!p) return CUFFT_INVALID_PLAN;
  if (p->type != type) return CUFFT_INVALID_TYPE;
  const bool r2c = type == CUFFT_R2C, same = in == out;
  int idist = p->idist, odist = p->odist;
  if (p->basic && same) (r2c ? idist : odist) = 2 * (p->n / 2 + 1);  // in place: real rows padded to whole bins
  const size_t real_row = size_t(r2c ? idist : odist), complex_row = size_t(r2c ? odist : idist);
  const size_t real_bytes = (size_t(p->batch - 1) * real_row + size_t(p->n)) * sizeof(float);
  const size_t complex_bytes = (size_t(p->batch - 1) * complex_row + size_t(p->n / 2 + 1)) * sizeof(float2);
  const size_t in_bytes = r2c ? real_bytes : complex_bytes, out_bytes = r2c ? complex_bytes : real_bytes;
  for (auto [ptr, bytes, what] : {std::make_tuple(static_cast<const void*>(in), in_bytes, "input"),
                                  std::make_tuple(static_cast<const void*>(out), out_bytes, "output")})
    if (!is_device(ptr, bytes)) {
      std::fprintf(stderr, "emulated cuFFT: the %s of a batch of %d %s transforms of %d points (%s) %s\n", what,
                   p->batch, r2c ? "R2C" : "C2R", p->n, describe(ptr, bytes).c_str(),
                   starts_in_device_memory(ptr) ? "runs past the end of its device allocation" : "is not device memory");
      return CUFFT_EXEC_FAILED;
    }
  // Planned now (FFTW_ESTIMATE leaves the arrays alone), executed in stream order.
  fftwf_plan& plan = same ? p->in_place : p->out_of_place;
  if (!plan) {
    std::lock_guard<std::mutex> lock(bsim::fftw_planner_mutex());
    int n = p->n;
    const unsigned flags = FFTW_ESTIMATE | FFTW_UNALIGNED;  // ESTIMATE: planning leaves the arrays alone
    plan = r2c ? fftwf_plan_many_dft_r2c(1, &n, p->batch, static_cast<float*>(in), nullptr, 1, idist,
                                         static_cast<fftwf_complex*>(out), nullptr, 1, odist, flags)
               : fftwf_plan_many_dft_c2r(1, &n, p->batch, static_cast<fftwf_complex*>(in), nullptr, 1, idist,
                                         static_cast<float*>(out), nullptr, 1, odist, flags);
    if (!plan) return CUFFT_SETUP_FAILED;
  }
  bsim::emu::enqueue(p->stream, [plan, r2c, in, out] {
    if (r2c)
      fftwf_execute_dft_r2c(plan, static_cast<float*>(in), static_cast<fftwf_complex*>(out));
    else
      fftwf_execute_dft_c2r(plan, static_cast<fftwf_complex*>(in), static_cast<float*>(out));
  });
  return CUFFT_SUCCESS;
}

cudaError_t run_or_report(const std::function<void()>& f, const char* call) {
  try {
    f();
    return cudaSuccess;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "emulated device: %s: an earlier asynchronous operation failed: %s\n", call, e.what());
    return fail(cudaErrorLaunchFailure, std::string(call) + ": " + e.what());
  }
}

}  // namespace

struct CUevent_st {
  std::shared_ptr<EventState> state = std::make_shared<EventState>();
};

namespace bsim::emu {
void enqueue(cudaStream_t s, std::function<void()> op) {
  if (!deferred()) {
    op();
    return;
  }
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  CUstream_st* q = stream_of(s);
  // The legacy stream's order against the blocking streams, both ways: what is queued there now goes first.
  std::vector<std::pair<CUstream_st*, uint64_t>> before;
  if (q == &g_legacy) {
    for (CUstream_st* b : g_blocking) before.emplace_back(b, position(b));
  } else if (q->blocking) {
    before.emplace_back(&g_legacy, position(&g_legacy));
  }
  if (!before.empty())
    op = [before = std::move(before), f = std::move(op)] {
      for (auto [other, upto] : before) run_until(other, upto);
      f();
    };
  q->queue.push_back({q->next_id++, std::move(op)});
}
}  // namespace bsim::emu

const char* cudaGetErrorString(cudaError_t e) {
  static thread_local std::string s;
  const char* name = "unknown error";
  switch (e) {
    case cudaSuccess: name = "no error"; break;
    case cudaErrorInvalidValue: name = "invalid argument"; break;
    case cudaErrorMemoryAllocation: name = "out of memory"; break;
    case cudaErrorInvalidConfiguration: name = "invalid configuration argument"; break;
    case cudaErrorInvalidDevicePointer: name = "invalid device pointer"; break;
    case cudaErrorInvalidMemcpyDirection: name = "invalid copy direction for memcpy"; break;
    case cudaErrorNoDevice: name = "no CUDA-capable device is detected"; break;
    case cudaErrorInvalidResourceHandle: name = "invalid resource handle"; break;
    case cudaErrorNotReady: name = "device not ready"; break;
    case cudaErrorLaunchFailure: name = "unspecified launch failure"; break;
  }
  s = name;
  if (e != cudaSuccess && !last_detail.empty()) s += " (emulated device: " + last_detail + ")";
  return s.c_str();
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "device " + std::to_string(device) + " (one is emulated)");
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "device " + std::to_string(device) + " (one is emulated)");
  *p = {};
  std::snprintf(p->name, sizeof p->name, "bsim CPU emulation of a CUDA device");
  p->totalGlobalMem = state().device_total;
  p->sharedMemPerBlockOptin = kMaxSharedOptIn;
  p->major = 9, p->minor = 0;
  p->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "device " + std::to_string(device) + " (one is emulated)");
  *value = 0;  // no memory clock or bus: an emulated device has no peak bandwidth to report
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  State& s = state();
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  const size_t rounded = (bytes + 255) / 256 * 256;
  {
    std::lock_guard<std::mutex> lock(s.m);
    if (s.device_used + rounded > s.device_total)
      return fail(cudaErrorMemoryAllocation, describe(nullptr, bytes) + " with " +
                                                 std::to_string(s.device_used) + " of " +
                                                 std::to_string(s.device_total) + " bytes in use");
    s.device_used += rounded;
  }
  void* q = nullptr;  // exactly `bytes` (the accounting rounds up as the device does): ASan's redzone follows
  if (posix_memalign(&q, 256, bytes) != 0) q = nullptr;
  if (!q) {
    std::lock_guard<std::mutex> lock(s.m);
    s.device_used -= rounded;
    return fail(cudaErrorMemoryAllocation, "the host could not back " + describe(nullptr, bytes));
  }
  std::memset(q, 0xFF, bytes);  // nothing is promised about new device memory
  std::lock_guard<std::mutex> lock(s.m);
  s.allocations[reinterpret_cast<uintptr_t>(q)] = {bytes, true};
  *p = q;
  return cudaSuccess;
}

// cudaFree and cudaFreeHost wait for the device to finish all work, as on the device: an operation still
// queued may use the memory.
cudaError_t cudaFree(void* p) {
  if (cudaError_t e = run_or_report(run_every_stream, "cudaFree")) return e;
  return release(p, true, "cudaFree");
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (posix_memalign(p, 256, std::max<size_t>(bytes, 1)) != 0) *p = nullptr;
  if (!*p) return fail(cudaErrorMemoryAllocation, "pinned " + describe(nullptr, bytes));
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  s.allocations[reinterpret_cast<uintptr_t>(*p)] = {bytes, false};
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
  if (cudaError_t e = run_or_report(run_every_stream, "cudaFreeHost")) return e;
  return release(p, false, "cudaFreeHost");
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  *free_bytes = s.device_total - s.device_used, *total_bytes = s.device_total;
  return cudaSuccess;
}

namespace {
bool is_pinned(const void* p) {
  const std::optional<Allocation> a = inside(p, 1);
  return a && !a->device;
}
void copy_rows(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows) {
  for (size_t r = 0; r < rows; ++r)
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
}
// The host side of a copy of `kind` (null for device to device).
const void* host_side(const void* dst, const void* src, cudaMemcpyKind kind) {
  return kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
}

// A copy of `rows` rows of `width` bytes, queued on stream s with the API's synchronisation for its kind and
// host memory (CUDA runtime API, "API synchronization behavior"): from pageable host memory the bytes are
// taken now (staged) and land later; to pageable host memory the call returns once the copy is done; pinned
// memory is read and written when the copy runs; `sync` (cudaMemcpy) also returns only once a copy to or from
// pinned memory is done.
void queue_copy(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows,
                cudaMemcpyKind kind, cudaStream_t s, bool sync) {
  if (kind == cudaMemcpyDefault) {  // the direction from where the pointers lie, as unified addressing gives it
    const bool to_dev = starts_in_device_memory(dst), from_dev = starts_in_device_memory(src);
    kind = to_dev ? (from_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                  : (from_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  if (kind == cudaMemcpyHostToHost) {  // fully synchronous
    copy_rows(dst, dpitch, src, spitch, width, rows);
    return;
  }
  const void* host = host_side(dst, src, kind);
  const bool pinned = host && is_pinned(host);
  if (kind == cudaMemcpyHostToDevice && !pinned) {  // staged now, rows packed
    std::vector<char> staged(width * rows);
    copy_rows(staged.data(), width, src, spitch, width, rows);
    bsim::emu::enqueue(s, [dst, dpitch, width, rows, staged = std::move(staged)] {
      copy_rows(dst, dpitch, staged.data(), width, width, rows);
    });
  } else {
    bsim::emu::enqueue(s, [=] { copy_rows(dst, dpitch, src, spitch, width, rows); });
  }
  if ((kind == cudaMemcpyDeviceToHost && (sync || !pinned)) || (sync && pinned)) run_all(stream_of(s));
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (cudaError_t e = check_copy(dst, bytes, src, bytes, kind, "cudaMemcpy")) return e;
  if (bytes) queue_copy(dst, bytes, src, bytes, bytes, 1, kind, nullptr, true);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = check_copy(dst, bytes, src, bytes, kind, "cudaMemcpyAsync")) return e;
  if (bytes) queue_copy(dst, bytes, src, bytes, bytes, 1, kind, s, false);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
  if (height == 0 || width == 0) return cudaSuccess;
  if (width > dpitch || width > spitch)
    return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width " + std::to_string(width) + " exceeds a pitch");
  if (cudaError_t e = check_copy(dst, dpitch * (height - 1) + width, src, spitch * (height - 1) + width, kind,
                                 "cudaMemcpy2DAsync"))
    return e;
  queue_copy(dst, dpitch, src, spitch, width, height, kind, s, false);
  return cudaSuccess;
}

// cudaMemset of device memory does not wait for it: it joins the legacy default stream.
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  return cudaMemset2DAsync(p, bytes, value, bytes, 1, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  return cudaMemset2DAsync(p, bytes, value, bytes, 1, s);
}
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t s) {
  if (height == 0 || width == 0) return cudaSuccess;
  if (width > pitch)
    return fail(cudaErrorInvalidValue, "cudaMemset2DAsync: width " + std::to_string(width) + " exceeds the pitch");
  if (cudaError_t e = check_side(p, pitch * (height - 1) + width, true, "destination", "cudaMemset2DAsync")) return e;
  bsim::emu::enqueue(s, [=] {
    for (size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(p) + r * pitch, value, width);
  });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  auto* q = new CUstream_st;
  q->blocking = !(flags & cudaStreamNonBlocking);
  g_streams.insert(q);
  if (q->blocking) g_blocking.insert(q);
  *s = q;
  return cudaSuccess;
}
// The stream's queued work still runs (the device finishes it), then the stream is gone.
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy of the default stream");
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  const cudaError_t e = run_or_report([s] { run_all(s); }, "cudaStreamDestroy");
  g_streams.erase(s), g_blocking.erase(s);
  g_destroyed.emplace_back(s);
  return e;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  run_all(stream_of(s));
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  run_every_stream();
  return cudaSuccess;
}
// Stream s waits for the event's last record as it stands now (a later record does not move the wait).
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent on a null event");
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  const EventState& st = *e->state;
  if (!st.stream) return cudaSuccess;  // never recorded: nothing to wait for
  bsim::emu::enqueue(s, [q = st.stream, upto = st.id] { run_until(q, upto); });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  auto* r = new CUevent_st;
  r->state->timing = !(flags & cudaEventDisableTiming);
  *e = r;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord of a null event");
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  std::shared_ptr<EventState> st = e->state;
  const uint64_t record = ++st->records;
  st->stamped = false;
  bsim::emu::enqueue(s, [st, record] {
    if (st->records == record) st->stamped = true, st->at = std::chrono::steady_clock::now();
  });
  CUstream_st* q = stream_of(s);
  st->stream = q, st->id = position(q);  // in immediate mode the record has run: position is its place too
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize of a null event");
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  if (e->state->stream) run_until(e->state->stream, e->state->id);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start || !end || !start->state->timing || !end->state->timing)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime needs two events made for timing");
  std::lock_guard<std::recursive_mutex> lock(stream_mutex());
  const EventState &a = *start->state, &b = *end->state;
  if (!a.stream || !b.stream)
    return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime of an event never recorded");
  if (!a.stamped || !b.stamped)
    return fail(cudaErrorNotReady, "cudaEventElapsedTime of an event whose record has not run yet (synchronise first)");
  *ms = float(std::chrono::duration<double, std::milli>(b.at - a.at).count());
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || size_t(value) > kMaxSharedOptIn)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                           " bytes of dynamic shared memory, at most " +
                                           std::to_string(kMaxSharedOptIn) + " on sm_90");
  State& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  s.shared_opt_in[kernel] = size_t(value);
  return cudaSuccess;
}

namespace bsim::emu {
bool launch_allowed(const void* kernel, const char* name, dim3 grid, dim3 block, size_t shared_bytes) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  std::string why;
  if (threads == 0 || threads > 1024 || block.z > 64)
    why = "blocks of " + std::to_string(block.x) + " x " + std::to_string(block.y) + " x " + std::to_string(block.z) +
          " threads (1 to 1024, z at most 64)";
  else if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    why = "a grid of " + std::to_string(grid.x) + " x " + std::to_string(grid.y) + " x " + std::to_string(grid.z) +
          " blocks (x 1 to 2^31 - 1, y and z 1 to 65535)";
  if (!why.empty()) {
    fail(cudaErrorInvalidConfiguration, std::string(name) + ": " + why);
    return false;
  }
  size_t allowed = kDefaultSharedLimit;
  {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.m);
    auto it = s.shared_opt_in.find(kernel);
    if (it != s.shared_opt_in.end()) allowed = std::max(allowed, it->second);
  }
  if (shared_bytes > allowed) {
    fail(cudaErrorInvalidValue, std::string(name) + ": " + std::to_string(shared_bytes) +
                                    " bytes of dynamic shared memory, " + std::to_string(allowed) +
                                    " allowed (cudaFuncSetAttribute raises the 48 KiB default, up to 227 KiB)");
    return false;
  }
  return true;
}
}  // namespace bsim::emu

cufftResult cufftPlanMany(cufftHandle* plan, int rank, int* n, int* inembed, int, int idist, int* onembed, int,
                          int odist, cufftType type, int batch) {
  if (rank != 1 || !n || n[0] < 1 || batch < 1) return CUFFT_INVALID_VALUE;
  if (type != CUFFT_R2C && type != CUFFT_C2R) return CUFFT_INVALID_TYPE;  // the emulation has what bsim uses
  auto p = std::make_unique<FftPlan>();
  p->n = n[0], p->batch = batch, p->type = type;
  const int real_row = n[0], complex_row = n[0] / 2 + 1;
  // cuFFT ignores the strides and distances where the embeddings are null: the basic layout.
  const bool basic = !inembed || !onembed;
  p->basic = basic;
  p->idist = basic ? (type == CUFFT_R2C ? real_row : complex_row) : idist;
  p->odist = basic ? (type == CUFFT_R2C ? complex_row : real_row) : odist;
  std::lock_guard<std::mutex> lock(g_fft_mutex);
  *plan = g_next_fft++;
  g_ffts[*plan] = std::move(p);
  return CUFFT_SUCCESS;
}
cufftResult cufftExecR2C(cufftHandle plan, cufftReal* in, cufftComplex* out) { return exec(plan, in, out, CUFFT_R2C); }
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex* in, cufftReal* out) { return exec(plan, in, out, CUFFT_C2R); }
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t s) {
  FftPlan* p = find_fft(plan);
  if (!p) return CUFFT_INVALID_PLAN;
  p->stream = s;
  return CUFFT_SUCCESS;
}
cufftResult cufftDestroy(cufftHandle plan) {
  std::unique_ptr<FftPlan> p;
  {
    std::lock_guard<std::mutex> lock(g_fft_mutex);
    auto it = g_ffts.find(plan);
    if (it == g_ffts.end()) return CUFFT_INVALID_PLAN;
    p = std::move(it->second);
    g_ffts.erase(it);
  }
  // Queued executions use the FFTW plans: they run first (cuFFT's own destroy waits for its work too).
  if (run_or_report(run_every_stream, "cufftDestroy")) return CUFFT_EXEC_FAILED;
  return CUFFT_SUCCESS;
}
