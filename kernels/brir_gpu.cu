// BRIRs of a batch of rooms on the device: the buffers, plans and launches around the kernels of
// kernels/brir_kernels.cuh (image sources, scatter of the per-image HRIRs, late tail).
#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "kernels/batch_dsp.h"
#include "kernels/brir_gpu.h"
#include "kernels/brir_kernels.cuh"
#include "kernels/check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/launch.cuh"
#include "sim/fft.h"

namespace bsim::cuda {

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
  int stage_seg = 0, scatter_shared_samples = 0;  // the scatter's shared memory (scatter_shared_bytes)
  double fs_over_c = 0, fs = 0, c = 0;
  // late tail
  bool has_tail = false;
  int tail_n = 0, tail_nb = 0, tail_groups = 0;  // groups: the bands of one T60 ratio (tail_band_groups)
  DeviceBuffer<float> mag_l, mag_r, coh, weights, group_inv_ratio, tail_time;
  DeviceBuffer<cufftComplex> tail_spec;
  // BSIM_TAIL_KERNEL=fused (responses up to kTailFusedN): each ear's spectrum, then one kernel per (room, ear)
  bool fused_tail = false;
  DeviceBuffer<float2> tail_ear_spec, tail_twiddle;
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
    upload_and_wait(m.ir.get() + at, g.ir.data(), g.ir.size());
    m.grids.g[i] = {m.ir.get() + at, g.n_taps, g.n_az, g.n_el, g.az_step_deg, g.el_step_deg};
    at += g.ir.size();
  }
  // The scatter's shared memory: the accumulator and the stage of kScatterImages images' outputs (the longest
  // HRIR's). Above 48 kB a kernel must opt in; where the accumulator would not fit beside the stage (HRIRs of
  // thousands of taps), every room adds in global memory instead.
  for (const HrirGrid* g : grids) m.stage_seg = std::max(m.stage_seg, g->n_taps + 2 * half_width);
  const size_t optin = shared_opt_in_bytes();
  m.scatter_shared_samples = std::min(length, kScatterSharedSamples);
  if (scatter_shared_bytes(m.scatter_shared_samples, m.stage_seg) + kScatterStaticShared > optin)
    m.scatter_shared_samples = 0;
  if (scatter_shared_bytes(0, m.stage_seg) + kScatterStaticShared > optin)
    throw InputError("GPU renderer: HRIRs of " + std::to_string(m.stage_seg - 2 * half_width) +
                     " taps do not fit the scatter's shared memory; resample or truncate the SOFA set");
  allow_dynamic_shared((const void*)scatter_kernel,
                       int(scatter_shared_bytes(m.scatter_shared_samples, m.stage_seg)));
  m.rooms = DeviceBuffer<RoomGeometry>(size_t(max_rooms));
  m.images = DeviceBuffer<DeviceImage>(size_t(max_rooms) * capacity);
  m.counts = DeviceBuffer<int>(size_t(max_rooms));
  m.fs = fs, m.c = c_m_s;
  if (!diffuse.empty()) {
    // The late tail: cuFFT's batched inverse transforms (default), or with BSIM_TAIL_KERNEL=fused one kernel per
    // (room, ear) in shared memory where the responses fit its n (kernels/brir_kernels.cuh): measured slower, the
    // BRIR stage 2.06 against 1.84 ms of the H200's default batch (bench/RESULTS.md run 8), so not the default.
    m.fused_tail = kernel_choice("BSIM_TAIL_KERNEL", "cufft") == "fused" && length <= kTailFusedN;
    const TailTables t = tail_tables(diffuse, band_ratio, m.fused_tail ? kTailFusedN : good_fft_size(length), fs);
    m.has_tail = true;
    m.tail_groups = t.n_groups, m.tail_n = t.n, m.tail_nb = t.nb;
    m.mag_l = to_device(t.mag_l), m.mag_r = to_device(t.mag_r), m.coh = to_device(t.coh);
    m.weights = to_device(t.weights), m.group_inv_ratio = to_device(t.group_inv_ratio);
  }
  if (m.fused_tail) {
    m.tail_ear_spec = DeviceBuffer<float2>(size_t(max_rooms) * 2 * m.tail_nb);
    m.tail_twiddle = to_device(fft_twiddles(m.tail_n / 2, 16));
    allow_dynamic_shared((const void*)tail_fused_kernel<16>, tail_fused_shared_bytes());
  } else if (m.has_tail) {
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
  BSIM_CUDA_TRY(cudaMemset2DAsync(out, pitch, 0, width, size_t(B) * 2, s));
  if (direct && n_direct > 0) BSIM_CUDA_TRY(cudaMemset2DAsync(direct, pitch, 0, width, size_t(n_direct) * 2, s));
  BSIM_LAUNCH(image_sources_kernel, B, kImageThreads, 0, s)(
      rooms, m.grids, m.fs_over_c, m.capacity, m.images.get(), counts);
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(scatter_kernel, B, kScatterThreads, scatter_shared_bytes(m.scatter_shared_samples, m.stage_seg), s)(
      rooms, m.images.get(), counts, m.capacity, m.grids, m.half_width, m.length, stride, out, direct, n_direct,
      m.fs_over_c, m.scatter_shared_samples, m.stage_seg);
  BSIM_CUDA_TRY(cudaGetLastError());
  if (late_tail && m.fused_tail) {
    BSIM_LAUNCH(tail_ear_spectra_kernel, dim3((m.tail_nb + kTailThreads - 1) / kTailThreads, B), kTailThreads, 0, s)(
        rooms, m.mag_l.get(), m.mag_r.get(), m.coh.get(), m.tail_n, m.tail_nb, m.tail_ear_spec.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    BSIM_LAUNCH(tail_fused_kernel<16>, 2 * B, kTailFusedThreads, tail_fused_shared_bytes(), s)(
        rooms, m.tail_ear_spec.get(), m.weights.get(), m.group_inv_ratio.get(), m.tail_groups, m.tail_twiddle.get(),
        m.length, m.fs, m.c, stride, out);
    BSIM_CUDA_TRY(cudaGetLastError());
  } else if (late_tail) {
    // Executions cover whole chunks of rooms; rooms past B hold stale spectra whose output is never read.
    BSIM_LAUNCH(tail_spectra_kernel, dim3((m.tail_nb + kTailThreads - 1) / kTailThreads, B), kTailThreads, 0, s)(
        rooms, m.mag_l.get(), m.mag_r.get(), m.coh.get(), m.weights.get(), m.tail_groups, m.tail_n, m.tail_nb,
        m.tail_spec.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    if (cufftSetStream(m.tail_plan, s) != CUFFT_SUCCESS) throw RuntimeError("cuFFT: cufftSetStream failed");
    const size_t per_room_spec = size_t(2) * m.tail_groups * m.tail_nb, per_room_time = size_t(2) * m.tail_groups * m.tail_n;
    for (int r0 = 0; r0 < B; r0 += m.tail_chunk)
      if (cufftExecC2R(m.tail_plan, m.tail_spec.get() + r0 * per_room_spec, m.tail_time.get() + r0 * per_room_time) !=
          CUFFT_SUCCESS)
        throw RuntimeError("cuFFT: late-tail inverse transform failed");
    BSIM_LAUNCH(tail_envelope_kernel, dim3((m.length + kTailThreads - 1) / kTailThreads, 2 * B), kTailThreads, 0, s)(
        rooms, m.tail_time.get(), m.group_inv_ratio.get(), m.tail_groups, m.tail_n, m.length, m.fs, m.c, stride, out);
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
