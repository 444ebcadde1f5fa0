// libsndfile decoding and soxr resampling; all failures become InputError with the file name.
#include "io/audio.h"

#include <sndfile.h>
#include <soxr.h>

#include <cmath>

#include "io/error.h"

namespace bsim {

std::vector<float> resample(const std::vector<float>& x, double fs_in_hz, double fs_out_hz) {
  if (x.empty() || fs_in_hz == fs_out_hz) return x;
  const size_t n_out = static_cast<size_t>(std::llround(double(x.size()) * fs_out_hz / fs_in_hz));
  std::vector<float> y(n_out + 1);
  size_t done = 0;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  const soxr_runtime_spec_t rt = soxr_runtime_spec(1);  // callers parallelise over files, not inside one
  soxr_error_t err = soxr_oneshot(fs_in_hz, fs_out_hz, 1, x.data(), x.size(), nullptr, y.data(), y.size(), &done,
                                  &io, &q, &rt);
  if (err) throw RuntimeError(std::string("soxr resampling failed: ") + err);
  y.resize(done);
  return y;
}

std::vector<float> read_audio_mono(const std::string& path, double fs_hz) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw InputError("cannot read audio file '" + path + "': " + sf_strerror(nullptr));
  struct Closer {
    SNDFILE* f;
    ~Closer() { sf_close(f); }
  } closer{f};
  if (info.frames <= 0 || info.channels <= 0)
    throw InputError("audio file '" + path + "' holds no samples: remove it or fix the corpus");
  std::vector<float> interleaved(static_cast<size_t>(info.frames) * size_t(info.channels));
  sf_count_t got = sf_readf_float(f, interleaved.data(), info.frames);
  if (got <= 0) throw InputError("audio file '" + path + "' could not be decoded: " + sf_strerror(f));
  std::vector<float> mono(static_cast<size_t>(got), 0.0f);
  const float scale = 1.0f / float(info.channels);
  for (sf_count_t i = 0; i < got; ++i) {
    float s = 0;
    for (int c = 0; c < info.channels; ++c) s += interleaved[size_t(i) * info.channels + c];
    mono[size_t(i)] = s * scale;
  }
  for (float v : mono)
    if (!std::isfinite(v)) throw InputError("audio file '" + path + "' contains NaN or infinite samples");
  return resample(mono, double(info.samplerate), fs_hz);
}

void write_wav(const std::string& path, const std::vector<const float*>& channels, long n_samples, double fs_hz) {
  SF_INFO info{};
  info.samplerate = int(std::lround(fs_hz));
  info.channels = int(channels.size());
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) throw InputError("cannot write audio file '" + path + "': " + sf_strerror(nullptr));
  std::vector<float> inter(static_cast<size_t>(n_samples) * channels.size());
  for (long i = 0; i < n_samples; ++i)
    for (size_t c = 0; c < channels.size(); ++c) inter[size_t(i) * channels.size() + c] = channels[c][i];
  sf_count_t wrote = sf_writef_float(f, inter.data(), n_samples);
  sf_close(f);
  if (wrote != n_samples) throw RuntimeError("short write to '" + path + "'");
}

}  // namespace bsim
