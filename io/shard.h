// HDF5 shards of rendered examples (schema in docs/shard-format.md). Written through "<out>.partial" in
// blocks; the final name appears only when every example is in and the file is marked complete, so an
// interrupted run leaves nothing that looks finished and can be resumed from its last flushed block.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/h5.h"

namespace bsim {

constexpr const char* kShardFormat = "bsim-shard";
constexpr long long kShardFormatVersion = 1;

enum class ColumnType { f64, i32, i8 };
struct ColumnSpec {
  std::string name;
  int width = 1;  // 1: [N]; >1: [N, width]
  ColumnType type = ColumnType::f64;
  std::string description;
};

struct ShardLayout {
  long long n_examples = 0;
  int n_samples = 0;               // T
  int n_features = 0, n_frames = 0;
  double fs_hz = 0;
  std::string audio_dtype = "float16";
  int compression = 0;
  int chunk_examples = 16;
  std::vector<ColumnSpec> columns;  // stored under /scene
};

// One block of consecutive examples, all arrays row-major with the example index first.
struct ShardBlock {
  long long start = 0;
  int count = 0;
  const float* clean = nullptr;      // [count][2][T]
  const float* augmented = nullptr;  // [count][2][T]
  // Optional: the same audio already in IEEE float16 (round to nearest even), written as is when the shard
  // stores float16 (the GPU converts on the device); float32 shards use the float arrays.
  const uint16_t* clean_half = nullptr;
  const uint16_t* augmented_half = nullptr;
  const float* teacher = nullptr;    // [count][F][frames]
  std::map<std::string, std::vector<double>> columns;  // name -> [count * width]
};

class ShardWriter {
 public:
  // Creates "<path>.partial" (throws InputError when it cannot be created).
  ShardWriter(const std::string& path, const ShardLayout& layout, const std::map<std::string, std::string>& attrs,
              const std::map<std::string, std::vector<std::string>>& string_lists);
  // Reopens "<path>.partial" for resuming; throws InputError unless it matches `config_yaml` and layout.
  static ShardWriter resume(const std::string& path, const ShardLayout& layout, const std::string& config_yaml);
  ShardWriter(ShardWriter&&) noexcept = default;
  ~ShardWriter();

  long long n_done() const { return n_done_; }
  void write(const ShardBlock& block);  // must continue exactly at n_done(); flushed to disk on return
  void finish();                        // marks complete, closes and renames to the final path
  void abandon();                       // closes and deletes the partial file
  std::string partial_path() const { return path_ + ".partial"; }

 private:
  ShardWriter() = default;
  void open_datasets();
  std::string path_;
  ShardLayout layout_;
  h5::Handle file_;
  h5::Handle clean_, augmented_, teacher_;
  std::map<std::string, h5::Handle> columns_;
  long long n_done_ = 0;
  bool closed_ = false;
};

// What `bsim info` and loaders need to know about a shard without reading its audio.
struct ShardInfo {
  std::string path, format, config_yaml, bsim_version, created;
  long long format_version = 0, n_examples = 0, n_done = 0;
  bool complete = false;
  int n_samples = 0, n_features = 0, n_frames = 0;
  double fs_hz = 0;
  std::string audio_dtype, teacher;
  long long file_bytes = 0;
  std::map<std::string, std::vector<double>> columns;  // /scene columns, width-1 ones only
};
// Throws InputError when the file is missing, not HDF5, not a bsim shard, or of a newer format version.
ShardInfo read_shard_info(const std::string& path);

// Row access to a finished shard for loaders (btrain): float16 audio comes back as float32.
// Not thread-safe (HDF5 is built without thread safety): use one reader per thread.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);  // InputError unless a complete bsim shard
  const ShardInfo& info() const { return info_; }
  bool has(const std::string& dataset) const;
  // Reads rows [start, start+count) of a float dataset ("augmented", "clean", "teacher", "scene/azimuth_deg"...)
  // into out (resized to count x row size).
  void read(const std::string& dataset, long long start, int count, std::vector<float>& out) const;
  // The same in double precision, for columns that float would round ("scene/example_index" past 2^24).
  void read(const std::string& dataset, long long start, int count, std::vector<double>& out) const;
  // Global example indices of rows [start, start+count): scene/example_index, or the row numbers in a shard
  // written before that column existed.
  std::vector<double> example_indices(long long start, int count) const;

 private:
  ShardInfo info_;
  h5::Handle file_;
};

// float32 -> IEEE half (round to nearest even; overflow to inf, NaN kept).
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

}  // namespace bsim
