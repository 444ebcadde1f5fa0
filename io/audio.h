// Audio files through libsndfile (WAV, FLAC, OGG, ...) and resampling through soxr.
#pragma once
#include <string>
#include <vector>

namespace bsim {

// Reads any libsndfile-supported file, mixes it to mono and resamples it to fs_hz (soxr, high quality).
// Throws InputError naming the file when it cannot be read or holds no samples.
std::vector<float> read_audio_mono(const std::string& path, double fs_hz);

// Resamples a mono signal from fs_in_hz to fs_out_hz with soxr (high quality); identity when equal.
std::vector<float> resample(const std::vector<float>& x, double fs_in_hz, double fs_out_hz);

// Writes channel-major audio [channel][sample] as a 32-bit float WAV file.
void write_wav(const std::string& path, const std::vector<const float*>& channels, long n_samples, double fs_hz);

}  // namespace bsim
