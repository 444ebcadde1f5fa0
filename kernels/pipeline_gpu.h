// The whole example rendering of sim/pipeline.cpp for a batch on the GPU: the host plans each example
// (Renderer::plan: scene, speech segments, noise emitters — the same plan the CPU renders), then one stream
// does the rest on the device: dry signals gathered from the corpus kept in device memory, synthetic noise
// from counter-based random numbers, BRIRs of every emitter in one launch (images + late tail), batched
// convolution (reverberant and direct-path/clean renderings), babble levelling, noise at the
// scene's SNR, the output gain, float16 copies and the teacher features.
//
// Differences from the CPU by design (tests/test_gpu.cpp states the tolerances): the late tail and the
// synthetic noise draw their random numbers from device counter streams, so they match the CPU in
// statistics (spectrum, decay, level, coherence), not sample by sample; everything else follows the plan
// exactly. The convolution is the partitioned overlap-save kernels of kernels/conv_fused.cuh by default;
// BSIM_PIPELINE_CONV=cufft takes one N-point cuFFT transform per row instead (slower for the default batch: see
// bench/RESULTS.md run 8). Host header: no CUDA types.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "sim/generate.h"
#include "sim/pipeline.h"

namespace bsim::cuda {

class DevicePipeline {
 public:
  // Allocates everything for batches of up to max_batch examples and `n_slots` output sets once: no
  // allocation or plan creation per batch. `half_outputs` also keeps float16 copies of clean/augmented.
  DevicePipeline(const Renderer& renderer, int max_batch, int n_slots, bool half_outputs);
  ~DevicePipeline();
  DevicePipeline(const DevicePipeline&) = delete;
  DevicePipeline& operator=(const DevicePipeline&) = delete;

  int max_batch() const;
  int n_slots() const;

  // Plans examples `indices` on CPU threads, uploads what they need and enqueues their rendering into output
  // slot `slot`; returns once enqueued. The device first waits for the slot's last release().
  void enqueue(const std::vector<uint64_t>& indices, int slot);

  // Device pointers of a slot: audio [B][2][T] (B = the slot's batch), teacher [B][F][frames].
  const float* clean(int slot) const;
  const float* reverberant(int slot) const;
  const float* noise(int slot) const;
  const float* augmented(int slot) const;
  const float* teacher(int slot) const;

  // Blocks the host until the slot is rendered; returns its examples (scene, labels, n_images, output
  // gain ...; audio vectors empty). Rethrows nothing: CUDA errors surface as RuntimeError.
  const std::vector<Example>& wait(int slot);

  // The slot's examples as planned (scene and labels; n_images and output_gain only after wait()), without
  // waiting for the device.
  const std::vector<Example>& planned(int slot) const;

  // For a consumer on another CUDA stream (btrain): `stream` (a cudaStream_t) waits for the slot without
  // blocking the host; release() records on `stream` the point after which the slot may be overwritten.
  // consumer_stall_ms(): how long `stream` stood waiting for the slot at its last consumer_wait (events;
  // valid once the consumer's stream has passed that point).
  void consumer_wait(int slot, void* stream);
  void release(int slot, void* stream);
  double consumer_stall_ms(int slot) const;

  struct HostCopy {
    const uint16_t* clean_half = nullptr;
    const uint16_t* augmented_half = nullptr;
    const float* teacher = nullptr;
  };
  // Copies the slot's float16 audio and teacher into pinned host memory of that slot (a second stream, so
  // it overlaps the rendering of the next slot), waits for the copy and releases the slot.
  HostCopy download(int slot);

  // The slot's four float32 signals [B][2][T] and teacher [B][F][frames] in host vectors (tests, tools).
  struct HostOutputs {
    std::vector<float> clean, reverberant, noise, augmented, teacher;
    std::vector<uint16_t> clean_half, augmented_half;  // when built with half_outputs
  };
  HostOutputs copy_outputs(int slot);

  double busy_seconds() const;  // sum of the GPU time of every rendered batch (CUDA events)

  // Where that time goes: GPU seconds of each stage summed over the rendered batches (CUDA events between the
  // stages, read when a slot is waited for). The stages, in stream order: uploading the batch's parameters;
  // dry signals (synthetic noise, corpus gather, their spectra); BRIRs of every emitter with their tails;
  // convolution (filter spectra, products, inverse transforms); mixing (babble levelling, SNR, output gain,
  // float32/float16 outputs); teacher features.
  struct StageSeconds {
    double upload = 0, dry_signals = 0, brirs = 0, convolution = 0, mixing = 0, teacher = 0;
    long long batches = 0;
  };
  StageSeconds stage_seconds() const;

  // The layout of the slot's last batch, for counting its memory traffic (bench/bench_gpu.cpp's floors):
  // examples B, emitters E (the B targets and the noise emitters: one dry input row and two response rows
  // each, plus two direct-path rows per example), samples per row N, response length L, output samples T,
  // teacher features x frames.
  struct BatchShape {
    int examples = 0, emitters = 0;
    long long row_length = 0;
    int response_length = 0, samples = 0, features = 0, frames = 0;
  };
  BatchShape shape(int slot) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// `bsim generate --device cuda`: blocks of `block` examples rendered by a DevicePipeline.
std::unique_ptr<BlockBackend> make_cuda_backend(const Renderer& renderer, int block);

}  // namespace bsim::cuda
