// Batch rendering on one CUDA stream; see pipeline_gpu.h for what is rendered and how it relates to the CPU.
//
// Row layout (every real row N = good_fft_size(T + L - 1) floats, spectra rows N/2 + 1 bins):
//   inputs  [E rows]            dry signal of emitter e: rows 0..B-1 are the examples' target speech,
//                               rows B..E-1 the noise emitters (point noise, babble talkers)
//   filters [2 E rows]          BRIR of emitter e, ear: row 2e + ear
//           [2 B rows @ kDirect] direct path of example b: row kDirect + 2b + ear
// The filter rows turn into the convolution results in place (spectra multiplied, inverse into the rows).
// Batched cuFFT plans cover a fixed chunk of rows and are executed chunk by chunk over the rows in use, so
// a batch with few babble talkers pays for few transforms; each region has one chunk of slack rows.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "io/error.h"
#include "kernels/batch_dsp.h"
#include "kernels/brir_gpu.h"
#include "kernels/check.cuh"
#include "kernels/conv_fused.cuh"
#include "kernels/counter_rng.cuh"
#include "kernels/cufft_plan.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/launch.cuh"
#include "kernels/pipeline_gpu.h"
#include "kernels/pipeline_kernels.cuh"
#include "kernels/pipeline_plan.h"
#include "sim/features.h"
#include "sim/fft.h"
#include "sim/parallel.h"
#include "sim/rng.h"
#include "sim/spectral_tilt.h"

namespace bsim::cuda {
namespace {

int blocks_for(long long n) { return int((n + kPipelineThreads - 1) / kPipelineThreads); }

// Everything the host decides about one example before the device renders it.
struct HostExample {
  ExamplePlan plan;
  std::vector<RoomGeometry> rooms;  // target first, then the noise emitters
  Example meta;
};

}  // namespace

struct DevicePipeline::Impl {
  const Renderer* renderer = nullptr;
  Config cfg;
  int max_batch = 0, n_slots = 0, T = 0, L = 0, N = 0, nb = 0, ns = 0, nbs = 0, E_max = 0, chunk = 0;
  long long direct_row0 = 0;  // first direct-path row of the filter rows
  // The convolution: BSIM_PIPELINE_CONV=fused (default: the partitioned overlap-save kernels of
  // kernels/conv_fused.cuh on the rows, blocks of 2048, radix 16, each pair over the partitions its response
  // fills) or cufft (one N-point transform per row). Chosen by a count (~4,600 full-length transforms of 81,000
  // points per batch against ~970 pairs), then measured (bench/RESULTS.md run 8, H200): 2.03 against 3.50 ms of
  // the default batch; gpu_check times both.
  bool fused_conv = false;
  FusedConvParams cp{};
  int conv_smem = 0, conv_threads = 0;
  DeviceBuffer<float2> conv_twiddle, conv_X, conv_H;
  DeviceBuffer<ConvPair> d_pairs;
  int n_features = 0, n_frames = 0, threads = 1;
  bool half = false;
  Stream stream, copy_stream;

  std::unique_ptr<BrirRenderer> brirs;
  std::unique_ptr<BatchTeacher> teacher;
  std::unique_ptr<FftPlan> r2c, c2r, syn_c2r;

  // constants
  DeviceBuffer<float> syn_shape, syn_mag_l, syn_mag_r, syn_coh;
  // working buffers (one set: the stream orders batches)
  DeviceBuffer<float> inputs, filters, syn, noise_raw;
  DeviceBuffer<cufftComplex> X, H, syn_spec;
  DeviceBuffer<double> emitter_energy;        // [emitter][mixing chunk]
  DeviceBuffer<MixSums> snr_sums, mix_sums;   // [example][mixing chunk]
  DeviceBuffer<int> counts;
  DeviceBuffer<Gains> gains;
  DeviceBuffer<RoomGeometry> d_rooms;
  DeviceBuffer<ExampleParams> d_examples;
  DeviceBuffer<EmitterParams> d_emitters;
  DeviceBuffer<Segment> d_segments;
  size_t segment_capacity = 0;

  // the speech corpus (and recorded noise) in device memory: file key -> offset in the arena
  DeviceBuffer<float> arena;
  size_t arena_used = 0;
  std::map<int, size_t> arena_index;  // key: speech file i -> i, noise file i -> -(i + 1)

  struct Slot {
    int B = 0, E = 0;  // examples and emitters (targets + noise emitters) of the batch last enqueued
    DeviceBuffer<float> clean, reverberant, noise, augmented, teacher;
    DeviceBuffer<__half> clean_half, augmented_half;
    PinnedBuffer<RoomGeometry> h_rooms;
    PinnedBuffer<ExampleParams> h_examples;
    PinnedBuffer<EmitterParams> h_emitters;
    PinnedBuffer<Segment> h_segments;
    PinnedBuffer<ConvPair> h_pairs;  // fused convolution: the batch's pairs (emitters, then direct paths)
    PinnedBuffer<int> h_counts;
    PinnedBuffer<Gains> h_gains;
    PinnedBuffer<uint16_t> host_clean_half, host_aug_half;
    PinnedBuffer<float> host_teacher;
    std::unique_ptr<Event> start, done, uploaded, free, wait_begin, wait_end;
    // Timed marks between the stages (DevicePipeline::StageSeconds): after the upload, the dry signals, the
    // BRIRs, the convolution and the mixing; the teacher ends at `done`.
    std::unique_ptr<Event> stage_end[5];
    bool free_recorded = false, uploaded_recorded = false, timed = true, pending = false;
    std::vector<Example> examples;
  };
  std::vector<Slot> slots;
  double busy_s = 0;
  DevicePipeline::StageSeconds stages;

  void exec_r2c(float* in, cufftComplex* out, long long row_begin, long long row_end) {
    for (long long r = row_begin; r < row_end; r += chunk)
      BSIM_CUFFT_TRY(cufftExecR2C(r2c->get(), in + r * N, out + r * nb));
  }
  void exec_c2r(cufftComplex* in, float* out, long long row_begin, long long row_end) {
    for (long long r = row_begin; r < row_end; r += chunk)
      BSIM_CUFFT_TRY(cufftExecC2R(c2r->get(), in + r * nb, out + r * N));
  }
  const float* corpus_pointer(int key);
  void upload_corpus(const std::set<int>& keys);
};

void DevicePipeline::Impl::upload_corpus(const std::set<int>& keys) {
  const auto fetch = [&](int key) {
    std::shared_ptr<const std::vector<float>> x = key >= 0 ? renderer->utterance(key) : renderer->noise_file(-key - 1);
    if (!x)
      throw RuntimeError((key >= 0 ? "speech file '" + renderer->speech_files()[size_t(key)]
                                   : "noise file '" + renderer->noise_files()[size_t(-key - 1)]) +
                         "' became unreadable");
    return x;
  };
  std::map<int, std::shared_ptr<const std::vector<float>>> missing;  // by key, as the set orders them
  size_t need = 0;
  for (int key : keys)
    if (!arena_index.count(key)) {
      auto x = fetch(key);
      need += x->size();
      missing.emplace(key, std::move(x));
    }
  if (arena_used + need > arena.size()) {  // start over with this batch's audio alone (fetched once)
    for (int key : keys)
      if (!missing.count(key)) {
        auto x = fetch(key);
        need += x->size();
        missing.emplace(key, std::move(x));
      }
    if (need > arena.size())
      throw InputError("one batch needs " + std::to_string(need * 4 / (1024 * 1024)) +
                       " MB of dry audio on the device, more than speech.cache_mb: raise speech.cache_mb");
    arena_index.clear();  // the batches that read the old contents come before the copies below in stream order
    arena_used = 0;
  }
  // On the stream that reads the arena: a cudaMemcpy would go to the legacy default stream, which the pipeline's
  // non-blocking stream does not wait for, and might land after the gather read it (from pageable memory the
  // bytes are taken at the call, so the host's copy may go at once).
  for (auto& [key, x] : missing) {
    BSIM_CUDA_TRY(cudaMemcpyAsync(arena.get() + arena_used, x->data(), x->size() * sizeof(float),
                                  cudaMemcpyHostToDevice, stream.get()));
    arena_index[key] = arena_used;
    arena_used += x->size();
  }
}

const float* DevicePipeline::Impl::corpus_pointer(int key) { return arena.get() + arena_index.at(key); }

DevicePipeline::DevicePipeline(const Renderer& renderer, int max_batch, int n_slots, bool half_outputs) try
    : impl_(std::make_unique<Impl>()) {
  if (!device_available()) throw RuntimeError("no CUDA device is visible: the GPU pipeline cannot start");
  Impl& m = *impl_;
  const Config& cfg = renderer.config();
  m.renderer = &renderer, m.cfg = cfg, m.max_batch = max_batch, m.n_slots = n_slots, m.half = half_outputs;
  m.T = renderer.n_samples();
  m.threads = resolve_threads(cfg.threads);
  const double fs = cfg.sample_rate_hz;
  const auto& grids = renderer.grids();
  int max_taps = 0;
  for (const auto& g : grids) max_taps = std::max(max_taps, g.n_taps);
  // Rows long enough for the longest response the config allows (at least 0.1 s).
  m.L = brir_length_samples(std::max(cfg.render.transition_s, 0.1), cfg.room.t60_s.hi, cfg.render.band_t60_ratio, fs,
                            max_taps, cfg.render.frac_delay_half_width);
  m.N = good_fft_size(m.T + m.L - 1);
  m.nb = m.N / 2 + 1;
  int max_emitters = 0;
  auto weight = [&](const char* k) { auto it = cfg.noise.type_weights.find(k); return it == cfg.noise.type_weights.end() ? 0.0 : it->second; };
  if (weight("point") > 0) max_emitters = 1;
  if (weight("babble") > 0) max_emitters = std::max(max_emitters, int(std::ceil(cfg.noise.babble_talkers.hi)));
  if (max_emitters > kMaxBabbleTalkers)  // the config's validation says so too; the mixing's gains table holds these
    throw InputError("config key 'noise.babble_talkers' must be within [1, " + std::to_string(kMaxBabbleTalkers) + "]");
  m.E_max = max_batch * (1 + max_emitters);
  m.chunk = std::min(max_batch, 256);
  m.direct_row0 = 2LL * m.E_max + m.chunk;
  const long long filter_rows = m.direct_row0 + 2LL * max_batch + m.chunk;

  std::vector<const HrirGrid*> gp;
  std::vector<const DiffuseField*> dp;
  for (size_t i = 0; i < grids.size(); ++i) gp.push_back(&grids[i]), dp.push_back(&renderer.diffuse_fields()[i]);
  m.brirs = std::make_unique<BrirRenderer>(gp, m.E_max, m.L, 16384, cfg.render.frac_delay_half_width,
                                           cfg.speed_of_sound_m_s, dp, cfg.render.band_t60_ratio);
  m.teacher = std::make_unique<BatchTeacher>(cfg.features, max_batch, m.T);
  const FeatureShape fshape = teacher_shape(cfg.features, m.T);
  m.n_features = fshape.n_features, m.n_frames = fshape.n_frames;

  m.fused_conv = kernel_choice("BSIM_PIPELINE_CONV", "fused") == "fused";
  m.inputs = DeviceBuffer<float>(size_t(m.E_max + m.chunk) * m.N);
  // Input spectra: of every emitter for the cuFFT rows; with the partitioned kernels only the targets' (the
  // tilt's round trip), over the chunks their transforms cover.
  const int spectra_rows = m.fused_conv ? (max_batch + m.chunk - 1) / m.chunk * m.chunk : m.E_max + m.chunk;
  m.X = DeviceBuffer<cufftComplex>(size_t(spectra_rows) * m.nb);
  m.filters = DeviceBuffer<float>(size_t(filter_rows) * m.N);
  if (m.fused_conv) {
    // Rows of N samples hold T of signal and, for a tilted voice, the tilt's pre-ringing at their end, which
    // the kernels read for the K samples before time 0; the filter rows receive the results in place.
    // Blocks of 2,048, transforms of 4,096 points: the size the kernels are compiled for (kConvFixedLog2N).
    m.cp = fused_conv_params(m.T, m.L, 2, 1 << (kConvFixedLog2N - 1), 16);
    m.cp.x_stride = m.cp.h_stride = m.cp.out_stride = m.N;
    conv_read_negative_times(m.cp, m.N);
    if (m.N - m.cp.K < m.T) throw RuntimeError("GPU pipeline: rows too short for the partitioned convolution");
    m.conv_smem = fused_conv_shared_bytes(m.cp);
    for (const void* k : {(const void*)conv_input_spectra<16, kConvFixedLog2N>,
                          (const void*)conv_filter_spectra<16, kConvFixedLog2N>,
                          (const void*)conv_output_blocks<16, kConvFixedLog2N>})
      allow_dynamic_shared(k, m.conv_smem);
    m.conv_threads = fused_conv_threads(m.cp);
    m.conv_twiddle = to_device(fft_twiddles(m.cp.N, m.cp.max_radix));
    const size_t bins = size_t(m.cp.bins), max_pairs = size_t(m.E_max + max_batch);
    m.conv_X = DeviceBuffer<float2>(size_t(m.E_max) * m.cp.J2 * bins);
    m.conv_H = DeviceBuffer<float2>(max_pairs * m.cp.Q * 2 * bins);
    m.d_pairs = DeviceBuffer<ConvPair>(max_pairs);
  } else {
    m.H = DeviceBuffer<cufftComplex>(size_t(filter_rows) * m.nb);
  }
  m.r2c = std::make_unique<FftPlan>(m.N, CUFFT_R2C, m.chunk, m.N, m.nb);
  m.c2r = std::make_unique<FftPlan>(m.N, CUFFT_C2R, m.chunk, m.nb, m.N);
  BSIM_CUFFT_TRY(cufftSetStream(m.r2c->get(), m.stream.get()));
  BSIM_CUFFT_TRY(cufftSetStream(m.c2r->get(), m.stream.get()));
  // Set-up memsets on the pipeline's stream: a cudaMemset goes to the legacy default stream, which the
  // non-blocking stream that reads these buffers does not wait for.
  BSIM_CUDA_TRY(cudaMemsetAsync(m.inputs.get(), 0, m.inputs.size() * sizeof(float), m.stream.get()));
  BSIM_CUDA_TRY(cudaMemsetAsync(m.filters.get(), 0, m.filters.size() * sizeof(float), m.stream.get()));

  // Synthetic noise: ns-point spectra per example and ear, shaped as sim/brir.cpp's diffuse_noise.
  m.ns = good_fft_size(m.T);
  m.nbs = m.ns / 2 + 1;
  {
    const SyntheticNoiseTables t =
        synthetic_noise_tables(renderer.diffuse_fields(), noise_color_exponent(cfg.noise.color), m.ns, fs);
    m.syn_shape = to_device(t.shape), m.syn_mag_l = to_device(t.mag_l), m.syn_mag_r = to_device(t.mag_r);
    m.syn_coh = to_device(t.coh);
  }
  m.syn_spec = DeviceBuffer<cufftComplex>(size_t(max_batch) * 2 * m.nbs);
  m.syn = DeviceBuffer<float>(size_t(max_batch) * 2 * m.ns);
  m.syn_c2r = std::make_unique<FftPlan>(m.ns, CUFFT_C2R, max_batch * 2, m.nbs, m.ns);
  BSIM_CUFFT_TRY(cufftSetStream(m.syn_c2r->get(), m.stream.get()));
  BSIM_CUDA_TRY(cudaMemsetAsync(m.syn_spec.get(), 0, m.syn_spec.size() * sizeof(cufftComplex), m.stream.get()));

  m.noise_raw = DeviceBuffer<float>(size_t(max_batch) * 2 * m.T);
  m.emitter_energy = DeviceBuffer<double>(size_t(m.E_max) * mix_chunks(m.T));
  m.snr_sums = DeviceBuffer<MixSums>(size_t(max_batch) * mix_chunks(m.T));
  m.mix_sums = DeviceBuffer<MixSums>(size_t(max_batch) * mix_chunks(m.T));
  m.counts = DeviceBuffer<int>(size_t(m.E_max));
  m.gains = DeviceBuffer<Gains>(size_t(max_batch));
  m.d_rooms = DeviceBuffer<RoomGeometry>(size_t(m.E_max));
  m.d_examples = DeviceBuffer<ExampleParams>(size_t(max_batch));
  m.d_emitters = DeviceBuffer<EmitterParams>(size_t(m.E_max));
  m.segment_capacity = size_t(m.E_max) * 16;
  m.d_segments = DeviceBuffer<Segment>(m.segment_capacity);
  try {  // the one buffer whose size the batch does not set: its own advice
    m.arena = DeviceBuffer<float>(size_t(std::max(cfg.speech.cache_mb, 64)) * 1024 * 1024 / sizeof(float));
  } catch (const OutOfDeviceMemory& e) {
    throw RuntimeError("the GPU pipeline's speech arena (speech.cache_mb = " + std::to_string(cfg.speech.cache_mb) +
                       " MB of dry audio kept on the device) does not fit in device memory (" + e.what() +
                       "): lower speech.cache_mb (at least one batch's dry audio; 64 MB at the least)");
  }

  const size_t audio = size_t(max_batch) * 2 * m.T, feats = size_t(max_batch) * m.n_features * m.n_frames;
  m.slots.resize(size_t(n_slots));
  for (auto& s : m.slots) {
    s.clean = DeviceBuffer<float>(audio), s.reverberant = DeviceBuffer<float>(audio);
    s.noise = DeviceBuffer<float>(audio), s.augmented = DeviceBuffer<float>(audio);
    s.teacher = DeviceBuffer<float>(feats);
    BSIM_CUDA_TRY(cudaMemsetAsync(s.clean.get(), 0, audio * sizeof(float), m.stream.get()));
    if (half_outputs) {
      s.clean_half = DeviceBuffer<__half>(audio), s.augmented_half = DeviceBuffer<__half>(audio);
      s.host_clean_half = PinnedBuffer<uint16_t>(audio), s.host_aug_half = PinnedBuffer<uint16_t>(audio);
    }
    s.host_teacher = PinnedBuffer<float>(feats);
    s.h_rooms = PinnedBuffer<RoomGeometry>(size_t(m.E_max));
    s.h_examples = PinnedBuffer<ExampleParams>(size_t(max_batch));
    s.h_emitters = PinnedBuffer<EmitterParams>(size_t(m.E_max));
    s.h_segments = PinnedBuffer<Segment>(m.segment_capacity);
    if (m.fused_conv) s.h_pairs = PinnedBuffer<ConvPair>(size_t(m.E_max + max_batch));
    s.h_counts = PinnedBuffer<int>(size_t(max_batch));
    s.h_gains = PinnedBuffer<Gains>(size_t(max_batch));
    s.start = std::make_unique<Event>(true), s.done = std::make_unique<Event>(true);
    s.uploaded = std::make_unique<Event>(), s.free = std::make_unique<Event>();
    s.wait_begin = std::make_unique<Event>(true), s.wait_end = std::make_unique<Event>(true);
    for (auto& e : s.stage_end) e = std::make_unique<Event>(true);
  }
} catch (const OutOfDeviceMemory& e) {  // what it was for and what to do (the buffers made so far are freed)
  const Config& cfg = renderer.config();
  char clip[32];
  std::snprintf(clip, sizeof clip, "%g", cfg.clip_s);
  throw RuntimeError("the GPU pipeline for batches of " + std::to_string(max_batch) + " examples of " + clip +
                     " s does not fit in device memory (" + e.what() +
                     "): use smaller batches (bsim generate --batch; btrain: train.batch_size) or shorter clips");
}

DevicePipeline::~DevicePipeline() {
  if (impl_) cudaStreamSynchronize(impl_->stream.get()), cudaStreamSynchronize(impl_->copy_stream.get());
}

int DevicePipeline::max_batch() const { return impl_->max_batch; }
int DevicePipeline::n_slots() const { return impl_->n_slots; }
const float* DevicePipeline::clean(int s) const { return impl_->slots.at(size_t(s)).clean.get(); }
const float* DevicePipeline::reverberant(int s) const { return impl_->slots.at(size_t(s)).reverberant.get(); }
const float* DevicePipeline::noise(int s) const { return impl_->slots.at(size_t(s)).noise.get(); }
const float* DevicePipeline::augmented(int s) const { return impl_->slots.at(size_t(s)).augmented.get(); }
const float* DevicePipeline::teacher(int s) const { return impl_->slots.at(size_t(s)).teacher.get(); }
double DevicePipeline::busy_seconds() const { return impl_->busy_s; }
DevicePipeline::StageSeconds DevicePipeline::stage_seconds() const { return impl_->stages; }
DevicePipeline::BatchShape DevicePipeline::shape(int slot) const {
  const Impl& m = *impl_;
  const Impl::Slot& s = m.slots.at(size_t(slot));
  return {s.B, s.E, m.N, m.L, m.T, m.n_features, m.n_frames};
}

void DevicePipeline::enqueue(const std::vector<uint64_t>& indices, int slot_index) {
  Impl& m = *impl_;
  Impl::Slot& slot = m.slots.at(size_t(slot_index));
  const int B = int(indices.size());
  if (B < 1 || B > m.max_batch)
    throw InputError("GPU pipeline: batch of " + std::to_string(B) + " examples, built for at most " +
                     std::to_string(m.max_batch));
  if (slot.pending) wait(slot_index);  // its metadata must be read before the slot is reused
  if (slot.uploaded_recorded) BSIM_CUDA_TRY(cudaEventSynchronize(slot.uploaded->get()));  // staging reuse

  // 1. Host: plan every example (same plan as the CPU renderer), on all cores.
  std::vector<HostExample> hx(static_cast<size_t>(B));
  const Config& cfg = m.cfg;
  parallel_for(B, m.threads, [&](int i) {
    HostExample& h = hx[size_t(i)];
    h.plan = m.renderer->plan(indices[size_t(i)]);
    const Scene& s = h.plan.scene;
    const int taps = m.renderer->grids()[size_t(m.renderer->grid_index(s))].n_taps;
    h.rooms.push_back(room_geometry(cfg, s, s.source_m, 0, taps));
    for (const NoiseEmitter& e : h.plan.emitters)
      h.rooms.push_back(room_geometry(cfg, s, e.position_m, e.tail_substream, taps));
    Example& ex = h.meta;
    ex.scene = s;
    ex.n_samples = m.T;
    ex.speech_index = h.plan.speech_index;
    ex.noise_index = h.plan.noise_index;
    ex.transition_s = h.rooms[0].transition_s;
    ex.direct_delay_s = std::hypot(s.source_m.x - s.listener_m.x, s.source_m.y - s.listener_m.y,
                                   s.source_m.z - s.listener_m.z) / cfg.speed_of_sound_m_s;
  });

  // 2. Host: flatten into the upload arrays; the dry audio the batch needs goes to the device arena.
  std::set<int> keys;
  for (const HostExample& h : hx) {
    for (const ClipSegment& sg : h.plan.speech.segments) keys.insert(sg.file);
    for (const NoiseEmitter& e : h.plan.emitters)
      for (const ClipSegment& sg : e.clip.segments) keys.insert(e.clip.from_noise_files ? -sg.file - 1 : sg.file);
  }
  m.upload_corpus(keys);
  RoomGeometry* rooms = slot.h_rooms.get();
  ExampleParams* exs = slot.h_examples.get();
  EmitterParams* ems = slot.h_emitters.get();
  std::vector<Segment> segs;
  int E = B;
  for (int b = 0; b < B; ++b) {
    const HostExample& h = hx[size_t(b)];
    rooms[b] = h.rooms[0];
    ems[b] = {b, 0};
    for (const ClipSegment& sg : h.plan.speech.segments)
      segs.push_back({m.corpus_pointer(sg.file) + sg.offset, sg.take, sg.pos, b, 0, h.plan.speech.gain});
    ExampleParams& p = exs[b];
    p = {};
    p.snr_db = h.plan.scene.snr_db;
    p.noise_seed = Rng(cfg.seed, h.plan.scene.index, ::bsim::Stream::noise).next();
    p.noise_type = int(h.plan.scene.noise_type);
    p.grid_id = hrir_grid_index(cfg, h.plan.scene);
    p.speech_tilt_db_per_octave = float(h.plan.scene.speech_tilt_db_per_octave);
    p.first_emitter = E;
    p.n_emitters = int(h.plan.emitters.size());
    for (size_t k = 0; k < h.plan.emitters.size(); ++k, ++E) {
      const NoiseEmitter& e = h.plan.emitters[k];
      rooms[E] = h.rooms[k + 1];
      ems[E] = {b, e.equal_level ? 1 : 0};
      if (e.synthetic) {
        p.synthetic_point = 1;
        segs.push_back({m.syn.get() + size_t(b) * 2 * m.ns, m.T, 0, E, 0, 1.0});
      }
      for (const ClipSegment& sg : e.clip.segments)
        segs.push_back({m.corpus_pointer(e.clip.from_noise_files ? -sg.file - 1 : sg.file) + sg.offset, sg.take, sg.pos,
                        E, 0, e.clip.gain});
    }
  }
  if (segs.size() > m.segment_capacity) {  // rare (very short recorded noise): grow once, outside the steady state
    BSIM_CUDA_TRY(cudaStreamSynchronize(m.stream.get()));
    m.segment_capacity = segs.size() * 2;
    m.d_segments = DeviceBuffer<Segment>(m.segment_capacity);
    for (auto& s : m.slots) s.h_segments = PinnedBuffer<Segment>(m.segment_capacity);
  }
  std::copy(segs.begin(), segs.end(), slot.h_segments.get());
  const int S = int(segs.size());
  // Fused convolution: emitter e's BRIR pair (rows 2e, 2e + 1) with input e over the partitions its response
  // fills (n_samples: where the CPU's BRIR of the room ends; a room of short T60 needs fewer than the batch's
  // longest), then target b's direct-path pair with input b, over the partitions its delayed HRIR reaches
  // (+ 64 samples of margin).
  bool any_tilt = false;
  const int n_pairs = E + B;
  if (m.fused_conv) {
    ConvPair* pairs = slot.h_pairs.get();
    for (int e = 0; e < E; ++e) pairs[e] = {e, 2 * e, std::min(m.cp.Q, (rooms[e].n_samples + m.cp.K - 1) / m.cp.K)};
    for (int b = 0; b < B; ++b) {
      const Example& ex = hx[size_t(b)].meta;
      const int taps = m.renderer->grids()[size_t(m.renderer->grid_index(ex.scene))].n_taps;
      const int reach = direct_path_samples(ex.direct_delay_s, cfg, taps);
      pairs[E + b] = {b, int(m.direct_row0) + 2 * b, std::min(m.cp.Q, (reach + m.cp.K - 1) / m.cp.K)};
      any_tilt = any_tilt || ex.scene.speech_tilt_db_per_octave != 0.0;
    }
  }

  // 3. Device, in stream order.
  cudaStream_t st = m.stream.get();
  if (slot.free_recorded) BSIM_CUDA_TRY(cudaStreamWaitEvent(st, slot.free->get(), 0));
  BSIM_CUDA_TRY(cudaEventRecord(slot.start->get(), st));
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.d_rooms.get(), rooms, size_t(E) * sizeof(RoomGeometry), cudaMemcpyHostToDevice, st));
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.d_examples.get(), exs, size_t(B) * sizeof(ExampleParams), cudaMemcpyHostToDevice, st));
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.d_emitters.get(), ems, size_t(E) * sizeof(EmitterParams), cudaMemcpyHostToDevice, st));
  BSIM_CUDA_TRY(cudaMemcpyAsync(m.d_segments.get(), slot.h_segments.get(), size_t(S) * sizeof(Segment),
                                cudaMemcpyHostToDevice, st));
  if (m.fused_conv)
    BSIM_CUDA_TRY(cudaMemcpyAsync(m.d_pairs.get(), slot.h_pairs.get(), size_t(n_pairs) * sizeof(ConvPair),
                                  cudaMemcpyHostToDevice, st));
  BSIM_CUDA_TRY(cudaEventRecord(slot.uploaded->get(), st));
  slot.uploaded_recorded = true;
  BSIM_CUDA_TRY(cudaEventRecord(slot.stage_end[0]->get(), st));

  // Synthetic noise (diffuse at the ears; dry point noise).
  BSIM_LAUNCH(synthetic_spectra, dim3(blocks_for(m.nbs), B), kPipelineThreads, 0, st)(
      m.d_examples.get(), m.syn_shape.get(), m.syn_mag_l.get(), m.syn_mag_r.get(), m.syn_coh.get(), m.ns, m.nbs,
      m.syn_spec.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_CUFFT_TRY(cufftExecC2R(m.syn_c2r->get(), m.syn_spec.get(), m.syn.get()));

  // Dry signals into zeroed input rows, then their spectra.
  BSIM_CUDA_TRY(cudaMemsetAsync(m.inputs.get(), 0, size_t(E) * m.N * sizeof(float), st));
  BSIM_LAUNCH(gather_segments, dim3(32, std::min(S, 65535)), kPipelineThreads, 0, st)(
      m.d_segments.get(), S, m.N, m.inputs.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  const float fs = float(cfg.sample_rate_hz);
  if (!m.fused_conv) {
    m.exec_r2c(m.inputs.get(), m.X.get(), 0, E);
  } else if (any_tilt) {  // the tilted voices back in the time domain, pre-ringing at the rows' ends
    const int rows = (B + m.chunk - 1) / m.chunk * m.chunk;  // what the chunked transforms cover
    m.exec_r2c(m.inputs.get(), m.X.get(), 0, B);
    BSIM_LAUNCH(tilt_rows, blocks_for((long long)rows * m.nb), kPipelineThreads, 0, st)(
        m.X.get(), B, rows, m.nb, m.N, fs, m.d_examples.get());
    BSIM_CUDA_TRY(cudaGetLastError());
    m.exec_c2r(m.X.get(), m.inputs.get(), 0, B);
  }
  BSIM_CUDA_TRY(cudaEventRecord(slot.stage_end[1]->get(), st));

  // BRIRs of every emitter (and the direct paths of the targets) straight into the filter rows. The renderer
  // zeroes each row's [0, L); the convolution also reads past the response ([L, N) for the cuFFT rows, up to
  // the last partition's end Q K for the partitioned kernels), where the previous batch's results still lie.
  float* direct = m.filters.get() + m.direct_row0 * m.N;
  const long long read_end = m.fused_conv ? (long long)m.cp.Q * m.cp.K : m.N;
  if (read_end > m.L) {
    const size_t pitch = size_t(m.N) * sizeof(float), width = size_t(read_end - m.L) * sizeof(float);
    BSIM_CUDA_TRY(cudaMemset2DAsync(m.filters.get() + m.L, pitch, 0, width, size_t(2 * E), st));
    BSIM_CUDA_TRY(cudaMemset2DAsync(direct + m.L, pitch, 0, width, size_t(2 * B), st));
  }
  m.brirs->enqueue_device(m.d_rooms.get(), E, true, m.filters.get(), direct, B, m.N, m.counts.get(), st);
  BSIM_CUDA_TRY(cudaEventRecord(slot.stage_end[2]->get(), st));
  if (m.fused_conv) {
    FusedConvParams p = m.cp;
    p.pairs = m.d_pairs.get();
    const float2* tw = m.conv_twiddle.get();
    BSIM_LAUNCH((conv_input_spectra<16, kConvFixedLog2N>), dim3(p.J2 / 2, E), m.conv_threads, m.conv_smem, st)(
        m.inputs.get(), tw, p, m.conv_X.get());
    BSIM_LAUNCH((conv_filter_spectra<16, kConvFixedLog2N>), dim3(p.Q, n_pairs), m.conv_threads, m.conv_smem, st)(
        m.filters.get(), tw, p, m.conv_H.get());
    BSIM_LAUNCH((conv_output_blocks<16, kConvFixedLog2N>), dim3(p.J, n_pairs), m.conv_threads, m.conv_smem, st)(
        m.conv_X.get(), m.conv_H.get(), tw, p, m.filters.get());
    BSIM_CUDA_TRY(cudaGetLastError());
  } else {
    m.exec_r2c(m.filters.get(), m.H.get(), 0, 2LL * E);
    m.exec_r2c(m.filters.get(), m.H.get(), m.direct_row0, m.direct_row0 + 2LL * B);
    const float scale = 1.0f / float(m.N);
    BSIM_LAUNCH(multiply_rows, blocks_for(2LL * E * m.nb), kPipelineThreads, 0, st)(
        m.X.get(), m.H.get(), 2LL * E, 0, m.nb, scale, m.d_examples.get(), B, int(m.N), fs);
    BSIM_LAUNCH(multiply_rows, blocks_for(2LL * B * m.nb), kPipelineThreads, 0, st)(
        m.X.get(), m.H.get(), 2LL * B, m.direct_row0, m.nb, scale, m.d_examples.get(), B, int(m.N), fs);
    BSIM_CUDA_TRY(cudaGetLastError());
    m.exec_c2r(m.H.get(), m.filters.get(), 0, 2LL * E);
    m.exec_c2r(m.H.get(), m.filters.get(), m.direct_row0, m.direct_row0 + 2LL * B);
  }
  BSIM_CUDA_TRY(cudaEventRecord(slot.stage_end[3]->get(), st));

  // Noise, SNR, output gain, outputs, teacher: sums per (chunk, example), then the gains per example.
  const int chunks = mix_chunks(m.T);
  if (E > B) {
    BSIM_LAUNCH(emitter_energy, dim3(chunks, E - B), kPipelineThreads, 0, st)(m.filters.get(), m.N, m.T, B,
                                                                              m.emitter_energy.get());
    BSIM_CUDA_TRY(cudaGetLastError());
  }
  BSIM_LAUNCH(mix_noise, dim3(chunks, B), kPipelineThreads, 0, st)(
      m.d_examples.get(), m.d_emitters.get(), m.emitter_energy.get(), m.syn.get(), m.ns, m.filters.get(), m.N, m.T,
      m.noise_raw.get(), m.snr_sums.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(mixture_sums, dim3(chunks, B), kPipelineThreads, 0, st)(
      m.d_examples.get(), m.snr_sums.get(), m.filters.get(), direct, m.N, m.noise_raw.get(), m.T, m.mix_sums.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(example_gains, blocks_for(B), kPipelineThreads, 0, st)(
      m.d_examples.get(), m.snr_sums.get(), m.mix_sums.get(), chunks, B, m.T, m.gains.get());
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_LAUNCH(finalise, blocks_for(2LL * B * m.T), kPipelineThreads, 0, st)(
      m.filters.get(), direct, m.N, m.noise_raw.get(), m.gains.get(), B, m.T, slot.clean.get(), slot.reverberant.get(),
      slot.noise.get(), slot.augmented.get(), m.half ? slot.clean_half.get() : nullptr,
      m.half ? slot.augmented_half.get() : nullptr);
  BSIM_CUDA_TRY(cudaGetLastError());
  BSIM_CUDA_TRY(cudaEventRecord(slot.stage_end[4]->get(), st));
  m.teacher->enqueue_device(slot.clean.get(), slot.teacher.get(), st);
  BSIM_CUDA_TRY(cudaMemcpyAsync(slot.h_counts.get(), m.counts.get(), size_t(B) * sizeof(int), cudaMemcpyDeviceToHost, st));
  BSIM_CUDA_TRY(cudaMemcpyAsync(slot.h_gains.get(), m.gains.get(), size_t(B) * sizeof(Gains), cudaMemcpyDeviceToHost, st));
  BSIM_CUDA_TRY(cudaEventRecord(slot.done->get(), st));

  slot.B = B, slot.E = E;
  slot.examples.resize(size_t(B));
  for (int b = 0; b < B; ++b) slot.examples[size_t(b)] = std::move(hx[size_t(b)].meta);
  slot.pending = true;
  slot.free_recorded = false;
}

const std::vector<Example>& DevicePipeline::wait(int slot_index) {
  Impl& m = *impl_;
  Impl::Slot& slot = m.slots.at(size_t(slot_index));
  if (!slot.pending) return slot.examples;
  BSIM_CUDA_TRY(cudaEventSynchronize(slot.done->get()));
  float ms = 0;
  BSIM_CUDA_TRY(cudaEventElapsedTime(&ms, slot.start->get(), slot.done->get()));
  m.busy_s += ms * 1e-3;
  {
    const cudaEvent_t marks[7] = {slot.start->get(),        slot.stage_end[0]->get(), slot.stage_end[1]->get(),
                                  slot.stage_end[2]->get(), slot.stage_end[3]->get(), slot.stage_end[4]->get(),
                                  slot.done->get()};
    double* sums[6] = {&m.stages.upload,      &m.stages.dry_signals, &m.stages.brirs,
                       &m.stages.convolution, &m.stages.mixing,      &m.stages.teacher};
    for (int i = 0; i < 6; ++i) {
      float stage_ms = 0;
      BSIM_CUDA_TRY(cudaEventElapsedTime(&stage_ms, marks[i], marks[i + 1]));
      *sums[i] += stage_ms * 1e-3;
    }
    ++m.stages.batches;
  }
  for (int b = 0; b < slot.B; ++b) {
    Example& e = slot.examples[size_t(b)];
    e.n_images = slot.h_counts.get()[b];
    e.output_gain = slot.h_gains.get()[b].output;
    if (e.n_images > m.brirs->capacity())
      throw RuntimeError("GPU pipeline: example " + std::to_string(e.scene.index) + " has " + std::to_string(e.n_images) +
                         " image sources, more than the renderer's capacity " + std::to_string(m.brirs->capacity()));
  }
  slot.pending = false;
  return slot.examples;
}

const std::vector<Example>& DevicePipeline::planned(int slot) const { return impl_->slots.at(size_t(slot)).examples; }

void DevicePipeline::consumer_wait(int slot_index, void* stream) {
  Impl::Slot& slot = impl_->slots.at(size_t(slot_index));
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  BSIM_CUDA_TRY(cudaEventRecord(slot.wait_begin->get(), s));
  BSIM_CUDA_TRY(cudaStreamWaitEvent(s, slot.done->get(), 0));
  BSIM_CUDA_TRY(cudaEventRecord(slot.wait_end->get(), s));
}

double DevicePipeline::consumer_stall_ms(int slot_index) const {
  const Impl::Slot& slot = impl_->slots.at(size_t(slot_index));
  float ms = 0;
  BSIM_CUDA_TRY(cudaEventElapsedTime(&ms, slot.wait_begin->get(), slot.wait_end->get()));
  return ms;
}

void DevicePipeline::release(int slot_index, void* stream) {
  Impl::Slot& slot = impl_->slots.at(size_t(slot_index));
  BSIM_CUDA_TRY(cudaEventRecord(slot.free->get(), static_cast<cudaStream_t>(stream)));
  slot.free_recorded = true;
}

DevicePipeline::HostCopy DevicePipeline::download(int slot_index) {
  Impl& m = *impl_;
  Impl::Slot& slot = m.slots.at(size_t(slot_index));
  wait(slot_index);
  cudaStream_t cs = m.copy_stream.get();
  const size_t audio = size_t(slot.B) * 2 * m.T, feats = size_t(slot.B) * m.n_features * m.n_frames;
  BSIM_CUDA_TRY(cudaStreamWaitEvent(cs, slot.done->get(), 0));
  if (m.half) {
    BSIM_CUDA_TRY(cudaMemcpyAsync(slot.host_clean_half.get(), slot.clean_half.get(), audio * 2, cudaMemcpyDeviceToHost, cs));
    BSIM_CUDA_TRY(cudaMemcpyAsync(slot.host_aug_half.get(), slot.augmented_half.get(), audio * 2, cudaMemcpyDeviceToHost, cs));
  }
  BSIM_CUDA_TRY(cudaMemcpyAsync(slot.host_teacher.get(), slot.teacher.get(), feats * sizeof(float), cudaMemcpyDeviceToHost, cs));
  release(slot_index, cs);
  BSIM_CUDA_TRY(cudaStreamSynchronize(cs));
  return {slot.host_clean_half.get(), slot.host_aug_half.get(), slot.host_teacher.get()};
}

DevicePipeline::HostOutputs DevicePipeline::copy_outputs(int slot_index) {
  Impl& m = *impl_;
  Impl::Slot& slot = m.slots.at(size_t(slot_index));
  wait(slot_index);
  const size_t audio = size_t(slot.B) * 2 * m.T, feats = size_t(slot.B) * m.n_features * m.n_frames;
  HostOutputs h;
  auto get = [](std::vector<float>& v, const float* d, size_t n) {
    v.resize(n);
    BSIM_CUDA_TRY(cudaMemcpy(v.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  };
  get(h.clean, slot.clean.get(), audio), get(h.reverberant, slot.reverberant.get(), audio);
  get(h.noise, slot.noise.get(), audio), get(h.augmented, slot.augmented.get(), audio);
  get(h.teacher, slot.teacher.get(), feats);
  if (m.half) {
    h.clean_half.resize(audio), h.augmented_half.resize(audio);
    BSIM_CUDA_TRY(cudaMemcpy(h.clean_half.data(), slot.clean_half.get(), audio * 2, cudaMemcpyDeviceToHost));
    BSIM_CUDA_TRY(cudaMemcpy(h.augmented_half.data(), slot.augmented_half.get(), audio * 2, cudaMemcpyDeviceToHost));
  }
  return h;
}

namespace {

// `bsim generate --device cuda`: two slots in flight; float16 shards get the device's conversion, float32
// shards copy the float outputs (pageable; the uncommon case).
class CudaBackend : public BlockBackend {
 public:
  CudaBackend(const Renderer& r, int block)
      : half_(r.config().shard.audio_dtype == "float16"), pipe_(r, block, 2, half_), block_(block), T_(r.n_samples()) {}
  int block_size() const override { return block_; }
  std::string describe() const override { return "CUDA, batches of " + std::to_string(block_); }
  double device_seconds() const override { return pipe_.busy_seconds(); }
  void submit(long long first, int count) override {
    std::vector<uint64_t> idx(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) idx[size_t(i)] = uint64_t(first + i);
    pipe_.enqueue(idx, int(submitted_++ % 2));
  }
  BlockView collect() override {
    const int slot = int(collected_++ % 2);
    BlockView v;
    v.examples = &pipe_.wait(slot);
    v.count = int(v.examples->size());
    const DevicePipeline::HostCopy h = pipe_.download(slot);
    v.teacher = h.teacher;
    if (half_) {
      v.clean_half = h.clean_half, v.augmented_half = h.augmented_half;
    } else {
      const size_t n = size_t(v.count) * 2 * T_;
      f32_[slot][0].resize(n), f32_[slot][1].resize(n);
      BSIM_CUDA_TRY(cudaMemcpy(f32_[slot][0].data(), pipe_.clean(slot), n * 4, cudaMemcpyDeviceToHost));
      BSIM_CUDA_TRY(cudaMemcpy(f32_[slot][1].data(), pipe_.augmented(slot), n * 4, cudaMemcpyDeviceToHost));
      v.clean = f32_[slot][0].data(), v.augmented = f32_[slot][1].data();
    }
    return v;
  }

 private:
  bool half_;
  DevicePipeline pipe_;
  int block_, T_;
  long long submitted_ = 0, collected_ = 0;
  std::vector<float> f32_[2][2];
};

}  // namespace

std::unique_ptr<BlockBackend> make_cuda_backend(const Renderer& renderer, int block) {
  return std::make_unique<CudaBackend>(renderer, block);
}

}  // namespace bsim::cuda
