// Early BRIRs of a batch of rooms: kernel 1 enumerates each room's image sources (one block per room),
// kernel 2 scatters each image's delayed HRIR into its room's response (no dense gather over output
// samples: work is images x (HRIR taps + sinc taps), as on the CPU).
#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "io/grid_index.h"
#include "kernels/check.cuh"
#include "kernels/counter_rng.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/brir_gpu.h"
#include "sim/fft.h"
#include "sim/fracdelay.h"
#include "sim/rng.h"

namespace bsim::cuda {
namespace {

constexpr int kImageThreads = 256;   // threads per room in the image kernel
constexpr int kScatterThreads = 128; // threads per image block in the scatter kernel
constexpr int kScatterBlocksPerRoom = 32;  // blocks per room in the scatter grid (each strides over images)
constexpr int kMaxHalfWidth = 64;

struct DeviceImage {
  double delay_samples;  // double: a float loses the fraction of long delays (48 kHz, 2 s) to 1e-3 samples
  float gain;
  int grid_index;
  int direct;            // 1 for the order-0 image
};

struct GridView {
  const float* ir;  // [direction][ear][tap]
  int n_taps, n_az, n_el;
  double az_step_deg, el_step_deg;
};

// One grid per (SOFA set, head scale): 5 sets x 5 scales is 25. The set travels as a kernel parameter
// (40 B per grid; 64 grids = 2.5 kB, within the 4 kB parameter space).
constexpr int kMaxGrids = 64;
struct GridSet {
  GridView g[kMaxGrids];
};
static_assert(sizeof(GridSet) <= 3072, "GridSet is a kernel parameter: keep it well within the 4 kB parameter space");

__global__ void image_sources_kernel(const RoomGeometry* rooms, GridSet grids, double fs_over_c, int capacity,
                                     DeviceImage* images,  // [room][capacity]
                                     int* counts) {        // [room]
  const RoomGeometry& r = rooms[blockIdx.x];
  const GridView& grid = grids.g[r.grid_id];
  const double L[3] = {r.size_m[0], r.size_m[1], r.size_m[2]};
  const double s[3] = {r.source_m[0], r.source_m[1], r.source_m[2]};
  const double p[3] = {r.listener_m[0], r.listener_m[1], r.listener_m[2]};
  const double dmax = r.max_distance_m;
  int nmax[3], span[3];
  for (int a = 0; a < 3; ++a) nmax[a] = int(ceil(dmax / (2.0 * L[a]))) + 1, span[a] = 2 * (2 * nmax[a] + 1);
  const long long total = (long long)span[0] * span[1] * span[2];
  const double cy = cos((double)r.yaw_rad), sy = sin((double)r.yaw_rad);
  const double pi = 3.14159265358979323846;
  for (long long t = threadIdx.x; t < total; t += blockDim.x) {
    long long rest = t;
    int nq[3];
    for (int a = 2; a >= 0; --a) nq[a] = int(rest % span[a]), rest /= span[a];
    double pos[3], d2 = 0;
    int order[6];
    for (int a = 0; a < 3; ++a) {
      const int n = nq[a] / 2 - nmax[a], q = nq[a] % 2;
      pos[a] = (1 - 2 * q) * s[a] + 2.0 * n * L[a];
      order[2 * a] = abs(n - q), order[2 * a + 1] = abs(n);
      d2 += (pos[a] - p[a]) * (pos[a] - p[a]);
    }
    if (d2 > dmax * dmax) continue;
    const double d = sqrt(d2);
    double g = 1.0 / (4.0 * pi * fmax(d, 1e-3));
    for (int w = 0; w < 6; ++w) g *= pow((double)r.beta[w], order[w]);
    const double vx = pos[0] - p[0], vy = pos[1] - p[1], vz = pos[2] - p[2];
    const double hx = cy * vx + sy * vy, hy = -sy * vx + cy * vy;
    const double az = atan2(hy, hx) * 180.0 / pi, el = atan2(vz, hypot(hx, hy)) * 180.0 / pi;
    const int slot = atomicAdd(&counts[blockIdx.x], 1);
    const int is_direct = nq[0] / 2 == nmax[0] && nq[1] / 2 == nmax[1] && nq[2] / 2 == nmax[2] && nq[0] % 2 == 0 &&
                          nq[1] % 2 == 0 && nq[2] % 2 == 0;
    if (slot < capacity)
      images[(size_t)blockIdx.x * capacity + slot] = {d * fs_over_c, float(g),
                                                       grid_direction_index(az, el, grid.n_az, grid.n_el,
                                                                            grid.az_step_deg, grid.el_step_deg),
                                                       is_direct};
  }
}

// out[room][ear][length] += gain * (HRIR(direction) conv sinc(frac)) at floor(delay), per image.
__global__ void scatter_kernel(const RoomGeometry* rooms, const DeviceImage* images, const int* counts, int capacity,
                               GridSet grids, int half_width, int length, long long stride, float* out, float* direct,
                               int n_direct) {
  const int room = blockIdx.y;
  const GridView& grid = grids.g[rooms[room].grid_id];
  const int n_images = min(counts[room], capacity);
  __shared__ float taps[2 * kMaxHalfWidth + 1];
  const int seg = grid.n_taps + 2 * half_width;
  // Grid-stride over the room's images: the launch does not depend on the (device-side) image count.
  for (int im = blockIdx.x; im < n_images; im += gridDim.x) {
    const DeviceImage img = images[(size_t)room * capacity + im];
    const double fl = floor(img.delay_samples);
    const int n0 = int(fl);
    const float frac = float(img.delay_samples - fl);
    const float sin_pi_frac = sinf(3.14159265358979f * frac);
    __syncthreads();
    for (int j = threadIdx.x; j <= 2 * half_width; j += blockDim.x)
      taps[j] = img.gain * frac_delay_tap(j - half_width, frac, half_width, sin_pi_frac);
    __syncthreads();
    for (int ear = 0; ear < 2; ++ear) {
      const float* h = grid.ir + ((size_t)img.grid_index * 2 + ear) * grid.n_taps;
      float* dst = out + ((size_t)room * 2 + ear) * stride;
      float* dst_direct = (img.direct && direct && room < n_direct) ? direct + ((size_t)room * 2 + ear) * stride : nullptr;
      for (int j = threadIdx.x; j < seg; j += blockDim.x) {
        const int pos = n0 - half_width + j;
        if (pos < 0 || pos >= length) continue;
        // value at offset m = j - hw: sum_k taps[k] h[m - k], k = -hw..hw
        float acc = 0.0f;
        const int k_lo = max(-half_width, j - half_width - (grid.n_taps - 1)), k_hi = min(half_width, j - half_width);
        for (int kk = k_lo; kk <= k_hi; ++kk) acc += taps[kk + half_width] * h[j - half_width - kk];
        atomicAdd(dst + pos, acc);
        if (dst_direct) dst_direct[pos] += acc;  // one direct image per room: no other writer
      }
    }
  }
}

// --- late tail -------------------------------------------------------------------------------------------
constexpr int kTailThreads = 256;
constexpr double kTailFadeS = 0.004;  // as sim/brir.cpp

// Z[room][ear][group][k] = w_group(f_k) * Y_ear[k] / n, where Y_L = M_L X1, Y_R = M_R (coh X1 + sqrt(1-coh^2) X2)
// and X1, X2 are spectra of unit-variance white noise (E|X_k|^2 = n). A group is the bands of one T60 ratio
// (sim/brir.h tail_band_groups), its weight their summed weights.
__global__ void tail_spectra_kernel(const RoomGeometry* rooms, const float* mag_l_all, const float* mag_r_all,
                                    const float* coh_all,  // [grid][bin]: diffuse fields on the tail's n/2+1 bins
                                    const float* weights,  // [group][bin]
                                    int n_groups, int n, int nb, cufftComplex* Z) {
  const int room = blockIdx.y;
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= nb || rooms[room].t60_s <= 0.0f) return;
  const size_t gofs = (size_t)rooms[room].grid_id * nb;
  const float *mag_l = mag_l_all + gofs, *mag_r = mag_r_all + gofs, *coh = coh_all + gofs;
  const unsigned long long seed = rooms[room].tail_seed;
  const float s = sqrtf(0.5f * float(n));  // each of re/im carries half of E|X|^2 = n (DC/Nyquist: real only)
  const float2 a = normal2(seed, 2ull * k), b = normal2(seed, 2ull * k + 1);
  const float2 x1 = make_float2(a.x * s, (k == 0 || 2 * k == n) ? 0.0f : a.y * s);
  const float2 x2 = make_float2(b.x * s, (k == 0 || 2 * k == n) ? 0.0f : b.y * s);
  const float c = coh[k], q = sqrtf(fmaxf(0.0f, 1.0f - c * c));
  const float2 yl = make_float2(mag_l[k] * x1.x, mag_l[k] * x1.y);
  const float2 yr = make_float2(mag_r[k] * (c * x1.x + q * x2.x), mag_r[k] * (c * x1.y + q * x2.y));
  const float inv_n = 1.0f / float(n);
  for (int g = 0; g < n_groups; ++g) {
    const float w = weights[g * nb + k] * inv_n;
    Z[(((size_t)room * 2 + 0) * n_groups + g) * nb + k] = make_cuFloatComplex(w * yl.x, w * yl.y);
    Z[(((size_t)room * 2 + 1) * n_groups + g) * nb + k] = make_cuFloatComplex(w * yr.x, w * yr.y);
  }
}

// out[room][ear][t] += sum_g sqrt(c / (4 pi V fs)) exp(-3 ln10 t / T60_g) fade(t) z[room][ear][g][t], t >= start
__global__ void tail_envelope_kernel(const RoomGeometry* rooms, const float* z, const float* group_ratio,
                                     int n_groups, int n, int length, double fs, double c, long long stride,
                                     float* out) {
  const int room = blockIdx.y / 2, ear = blockIdx.y % 2;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= length) return;
  const RoomGeometry& r = rooms[room];
  if (r.t60_s <= 0.0f) return;
  const double t0 = r.transition_s, ts = double(t) / fs;
  if (ts < t0 - 0.5 * kTailFadeS) return;
  const double pi = 3.14159265358979323846;
  double fade = 1.0;
  if (ts < t0 + 0.5 * kTailFadeS) {
    const double u = fmin(fmax((ts - (t0 - 0.5 * kTailFadeS)) / kTailFadeS, 0.0), 1.0);
    fade = sin(0.5 * pi * u) * sin(0.5 * pi * u);
  }
  const double volume = double(r.size_m[0]) * r.size_m[1] * r.size_m[2];
  const double amp = sqrt(c / (4.0 * pi * volume * fs)) * fade;
  double acc = 0;
  for (int g = 0; g < n_groups; ++g) {
    const double decay = -3.0 * log(10.0) / (double(r.t60_s) * group_ratio[g] * fs);
    acc += exp(decay * t) * z[(((size_t)room * 2 + ear) * n_groups + g) * n + t];
  }
  out[((size_t)room * 2 + ear) * stride + t] += float(amp * acc);
}

}  // namespace

struct BrirRenderer::Impl {
  GridSet grids{};
  int n_grids = 0;
  DeviceBuffer<float> ir;
  DeviceBuffer<RoomGeometry> rooms;
  DeviceBuffer<DeviceImage> images;
  DeviceBuffer<int> counts;
  DeviceBuffer<float> out;
  Stream stream;
  int max_rooms = 0, length = 0, capacity = 0, half_width = 0, last_batch = 0;
  double fs_over_c = 0, fs = 0, c = 0;
  // late tail
  bool has_tail = false;
  int tail_n = 0, tail_nb = 0, tail_groups = 0;  // groups: the bands of one T60 ratio (tail_band_groups)
  DeviceBuffer<float> mag_l, mag_r, coh, weights, group_ratio, tail_time;
  DeviceBuffer<cufftComplex> tail_spec;
  cufftHandle tail_plan = 0;
  int tail_chunk = 0;  // rooms per execution of tail_plan (a launch pays for the rooms it renders)
  ~Impl() {
    if (tail_plan) cufftDestroy(tail_plan);
  }
};

bool device_available() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

BrirRenderer::BrirRenderer(const HrirGrid& grid, int max_rooms, int length, int capacity, int half_width,
                           double c_m_s, const DiffuseField* diffuse, const std::vector<double>& band_ratio)
    : BrirRenderer(std::vector<const HrirGrid*>{&grid}, max_rooms, length, capacity, half_width, c_m_s,
                   diffuse ? std::vector<const DiffuseField*>{diffuse} : std::vector<const DiffuseField*>{},
                   band_ratio) {}

BrirRenderer::BrirRenderer(const std::vector<const HrirGrid*>& grids, int max_rooms, int length, int capacity,
                           int half_width, double c_m_s, const std::vector<const DiffuseField*>& diffuse,
                           const std::vector<double>& band_ratio)
    : impl_(std::make_unique<Impl>()) {
  if (!device_available()) throw RuntimeError("no CUDA device is visible: the GPU renderer cannot start");
  if (half_width > kMaxHalfWidth) throw InputError("GPU renderer: frac_delay_half_width must be <= 64");
  if (grids.empty() || int(grids.size()) > kMaxGrids)
    throw InputError("GPU renderer: between 1 and " + std::to_string(kMaxGrids) +
                     " HRIR grids (hrtf.sofa entries x hrtf.head_scales entries), not " + std::to_string(grids.size()));
  if (!diffuse.empty() && diffuse.size() != grids.size())
    throw InputError("GPU renderer: one diffuse field per HRTF set");
  Impl& m = *impl_;
  m.max_rooms = max_rooms, m.length = length, m.capacity = capacity, m.half_width = half_width;
  m.n_grids = int(grids.size());
  const double fs = grids[0]->fs_hz;
  size_t total = 0;
  for (const HrirGrid* g : grids) {
    if (g->fs_hz != fs) throw InputError("GPU renderer: every HRTF set must be at the same sample rate");
    total += g->ir.size();
  }
  m.fs_over_c = fs / c_m_s;
  m.ir = DeviceBuffer<float>(total);
  size_t at = 0;
  for (int i = 0; i < m.n_grids; ++i) {
    const HrirGrid& g = *grids[size_t(i)];
    BSIM_CUDA_TRY(cudaMemcpy(m.ir.get() + at, g.ir.data(), g.ir.size() * sizeof(float), cudaMemcpyHostToDevice));
    m.grids.g[i] = {m.ir.get() + at, g.n_taps, g.n_az, g.n_el, g.az_step_deg, g.el_step_deg};
    at += g.ir.size();
  }
  m.rooms = DeviceBuffer<RoomGeometry>(size_t(max_rooms));
  m.images = DeviceBuffer<DeviceImage>(size_t(max_rooms) * capacity);
  m.counts = DeviceBuffer<int>(size_t(max_rooms));
  m.fs = fs, m.c = c_m_s;
  if (!diffuse.empty()) {
    const TailBandGroups groups = tail_band_groups(band_ratio);
    m.has_tail = true;
    m.tail_groups = int(groups.ratio.size());
    m.tail_n = good_fft_size(length);
    m.tail_nb = m.tail_n / 2 + 1;
    const size_t nb = size_t(m.tail_nb);
    std::vector<float> ml(nb * m.n_grids), mr(nb * m.n_grids), co(nb * m.n_grids), w(size_t(m.tail_groups) * nb),
        br(groups.ratio.begin(), groups.ratio.end());
    for (int k = 0; k < m.tail_nb; ++k) {
      const double f = double(k) * m.fs / m.tail_n;
      for (int i = 0; i < m.n_grids; ++i) {
        const DiffuseField& d = *diffuse[size_t(i)];
        ml[i * nb + k] = d.magnitude_at(0, f), mr[i * nb + k] = d.magnitude_at(1, f), co[i * nb + k] = d.coherence_at(f);
      }
      for (int g = 0; g < m.tail_groups; ++g) w[size_t(g) * nb + k] = float(groups.weight(g, f));
    }
    auto upload = [](DeviceBuffer<float>& dst, const std::vector<float>& src) {
      dst = DeviceBuffer<float>(src.size());
      BSIM_CUDA_TRY(cudaMemcpy(dst.get(), src.data(), src.size() * sizeof(float), cudaMemcpyHostToDevice));
    };
    upload(m.mag_l, ml), upload(m.mag_r, mr), upload(m.coh, co), upload(m.weights, w), upload(m.group_ratio, br);
    // One plan for a chunk of rooms, executed chunk by chunk over the rooms of a launch; one chunk of slack
    // rooms lets the last execution run past the rooms in use.
    m.tail_chunk = std::min(max_rooms, 256);
    const size_t rooms_alloc = size_t(max_rooms) + size_t(m.tail_chunk);
    m.tail_spec = DeviceBuffer<cufftComplex>(rooms_alloc * 2 * m.tail_groups * m.tail_nb);
    m.tail_time = DeviceBuffer<float>(rooms_alloc * 2 * m.tail_groups * m.tail_n);
    int n = m.tail_n;
    if (cufftPlanMany(&m.tail_plan, 1, &n, nullptr, 1, m.tail_nb, nullptr, 1, m.tail_n, CUFFT_C2R,
                      m.tail_chunk * 2 * m.tail_groups) != CUFFT_SUCCESS)
      throw RuntimeError("cuFFT: cannot plan the late-tail transforms");
  }
}

BrirRenderer::~BrirRenderer() = default;

int BrirRenderer::length() const { return impl_->length; }
int BrirRenderer::capacity() const { return impl_->capacity; }

void BrirRenderer::enqueue_device(const RoomGeometry* rooms, int B, bool late_tail, float* out, float* direct,
                                  int n_direct, long long stride, int* counts, void* stream_ptr) {
  Impl& m = *impl_;
  if (B < 1 || B > m.max_rooms) throw InputError("GPU renderer: batch of " + std::to_string(B) + " rooms, capacity " +
                                                 std::to_string(m.max_rooms));
  if (late_tail && !m.has_tail) throw InputError("GPU renderer: a late tail needs the diffuse field at construction");
  cudaStream_t s = static_cast<cudaStream_t>(stream_ptr);
  const size_t pitch = size_t(stride) * sizeof(float), width = size_t(m.length) * sizeof(float);
  BSIM_CUDA_TRY(cudaMemsetAsync(counts, 0, B * sizeof(int), s));
  BSIM_CUDA_TRY(cudaMemset2DAsync(out, pitch, 0, width, size_t(B) * 2, s));
  if (direct && n_direct > 0) BSIM_CUDA_TRY(cudaMemset2DAsync(direct, pitch, 0, width, size_t(n_direct) * 2, s));
  image_sources_kernel<<<B, kImageThreads, 0, s>>>(rooms, m.grids, m.fs_over_c, m.capacity, m.images.get(), counts);
  BSIM_CUDA_TRY(cudaGetLastError());
  const dim3 grid(std::min(kScatterBlocksPerRoom, m.capacity), B);
  scatter_kernel<<<grid, kScatterThreads, 0, s>>>(rooms, m.images.get(), counts, m.capacity, m.grids, m.half_width,
                                                  m.length, stride, out, direct, n_direct);
  BSIM_CUDA_TRY(cudaGetLastError());
  if (late_tail) {
    // Executions cover whole chunks of rooms; rooms past B hold stale spectra whose output is never read.
    tail_spectra_kernel<<<dim3((m.tail_nb + kTailThreads - 1) / kTailThreads, B), kTailThreads, 0, s>>>(
        rooms, m.mag_l.get(), m.mag_r.get(), m.coh.get(), m.weights.get(), m.tail_groups, m.tail_n, m.tail_nb,
        m.tail_spec.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    if (cufftSetStream(m.tail_plan, s) != CUFFT_SUCCESS) throw RuntimeError("cuFFT: cufftSetStream failed");
    const size_t per_room_spec = size_t(2) * m.tail_groups * m.tail_nb, per_room_time = size_t(2) * m.tail_groups * m.tail_n;
    for (int r0 = 0; r0 < B; r0 += m.tail_chunk)
      if (cufftExecC2R(m.tail_plan, m.tail_spec.get() + r0 * per_room_spec, m.tail_time.get() + r0 * per_room_time) !=
          CUFFT_SUCCESS)
        throw RuntimeError("cuFFT: late-tail inverse transform failed");
    tail_envelope_kernel<<<dim3((m.length + kTailThreads - 1) / kTailThreads, 2 * B), kTailThreads, 0, s>>>(
        rooms, m.tail_time.get(), m.group_ratio.get(), m.tail_groups, m.tail_n, m.length, m.fs, m.c, stride, out);
    BSIM_CUDA_TRY(cudaGetLastError());
  }
}

void BrirRenderer::enqueue(const std::vector<RoomGeometry>& rooms, bool late_tail) {
  Impl& m = *impl_;
  const int B = int(rooms.size());
  if (B < 1 || B > m.max_rooms) throw InputError("GPU renderer: batch of " + std::to_string(B) + " rooms, capacity " +
                                                 std::to_string(m.max_rooms));
  if (m.out.size() == 0) m.out = DeviceBuffer<float>(size_t(m.max_rooms) * 2 * m.length);
  cudaStream_t s = m.stream.get();
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.rooms.get(), rooms.data(), B * sizeof(RoomGeometry), cudaMemcpyHostToDevice, s));
  enqueue_device(m.rooms.get(), B, late_tail, m.out.get(), nullptr, 0, m.length, m.counts.get(), s);
  m.last_batch = B;
}

const float* BrirRenderer::render_device(const std::vector<RoomGeometry>& rooms, bool late_tail) {
  enqueue(rooms, late_tail);
  BSIM_CUDA_TRY(cudaStreamSynchronize(impl_->stream.get()));
  return impl_->out.get();
}

void BrirRenderer::render(const std::vector<RoomGeometry>& rooms, std::vector<float>& out,
                          std::vector<int>& images_per_room, bool late_tail) {
  enqueue(rooms, late_tail);
  Impl& m = *impl_;
  const int B = m.last_batch;
  cudaStream_t s = m.stream.get();
  out.resize(size_t(B) * 2 * m.length);
  images_per_room.resize(size_t(B));
  BSIM_CUDA_TRY(cudaMemcpyAsync(out.data(), m.out.get(), out.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
  BSIM_CUDA_TRY(cudaMemcpyAsync(images_per_room.data(), m.counts.get(), B * sizeof(int), cudaMemcpyDeviceToHost, s));
  BSIM_CUDA_TRY(cudaStreamSynchronize(s));
  for (int r = 0; r < B; ++r)
    if (images_per_room[size_t(r)] > m.capacity)
      throw RuntimeError("GPU renderer: room " + std::to_string(r) + " has " + std::to_string(images_per_room[size_t(r)]) +
                         " images, more than the capacity " + std::to_string(m.capacity) + " it was built for");
}

}  // namespace bsim::cuda
