// HDF5 shard writer/reader.
#include "io/shard.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <type_traits>

#include "io/error.h"

namespace bsim {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xFFu;
  uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) return uint16_t(sign | 0x7C00u | (mant ? 0x200u : 0u));  // inf / NaN
  int e = int(exp) - 127 + 15;
  if (e >= 0x1F) return uint16_t(sign | 0x7C00u);  // overflow -> inf
  if (e <= 0) {                                     // subnormal or zero
    if (e < -10) return uint16_t(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // carries into the exponent correctly
  return uint16_t(half);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) mant <<= 1, --exp;
      x = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 0x1F) {
    x = sign | 0x7F800000u | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

namespace {
hid_t column_file_type(ColumnType t) {
  switch (t) {
    case ColumnType::f64: return H5T_IEEE_F64LE;
    case ColumnType::i32: return H5T_STD_I32LE;
    case ColumnType::i8: return H5T_STD_I8LE;
  }
  return H5T_IEEE_F64LE;
}
}  // namespace

ShardWriter::ShardWriter(const std::string& path, const ShardLayout& layout,
                         const std::map<std::string, std::string>& attrs,
                         const std::map<std::string, std::vector<std::string>>& string_lists)
    : path_(path), layout_(layout) {
  h5::quiet_errors();
  const std::string tmp = partial_path();
  hid_t f = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0)
    throw InputError("cannot create output '" + tmp + "': check that the folder exists and is writable");
  file_ = h5::Handle(f);
  const hid_t root = file_.get();
  h5::set_attr(root, "format", std::string(kShardFormat));
  h5::set_attr(root, "format_version", kShardFormatVersion);
  h5::set_attr(root, "n_examples", layout.n_examples);
  h5::set_attr(root, "n_done", 0LL);
  h5::set_attr(root, "complete", 0LL);
  h5::set_attr(root, "sample_rate_hz", layout.fs_hz);
  h5::set_attr(root, "n_samples", (long long)layout.n_samples);
  for (const auto& kv : attrs) h5::set_attr(root, kv.first, kv.second);
  for (const auto& kv : string_lists) h5::write_string_list(root, kv.first, kv.second);

  const hsize_t N = hsize_t(layout.n_examples), T = hsize_t(layout.n_samples);
  const hsize_t C = hsize_t(std::min<long long>(layout.chunk_examples, std::max<long long>(1, layout.n_examples)));
  const hid_t audio_type = layout.audio_dtype == "float16" ? h5::float16_type() : H5T_IEEE_F32LE;
  clean_ = h5::create_dataset(root, "clean", audio_type, {N, 2, T}, {C, 2, T}, layout.compression);
  augmented_ = h5::create_dataset(root, "augmented", audio_type, {N, 2, T}, {C, 2, T}, layout.compression);
  teacher_ = h5::create_dataset(root, "teacher", H5T_IEEE_F32LE,
                                {N, hsize_t(layout.n_features), hsize_t(layout.n_frames)},
                                {C, hsize_t(layout.n_features), hsize_t(layout.n_frames)}, layout.compression);
  h5::Handle scene = h5::check(H5Gcreate2(root, "scene", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating /scene");
  for (const auto& col : layout.columns) {
    const hsize_t rows_per_chunk = std::max<hsize_t>(1, std::min<hsize_t>(N, 1024));
    std::vector<hsize_t> dims{N}, chunk{rows_per_chunk};
    if (col.width > 1) dims.push_back(hsize_t(col.width)), chunk.push_back(hsize_t(col.width));
    h5::Handle d = h5::create_dataset(scene.get(), col.name, column_file_type(col.type), dims, chunk, 0);
    h5::set_attr(d.get(), "description", col.description);
    columns_.emplace(col.name, std::move(d));
  }
  H5Fflush(root, H5F_SCOPE_GLOBAL);
}

void ShardWriter::open_datasets() {
  const hid_t root = file_.get();
  auto open = [&](const std::string& name) {
    hid_t d = H5Dopen2(root, name.c_str(), H5P_DEFAULT);
    if (d < 0) throw InputError("partial shard '" + partial_path() + "' lacks dataset '" + name + "': delete it and start again");
    return h5::Handle(d);
  };
  clean_ = open("clean");
  augmented_ = open("augmented");
  teacher_ = open("teacher");
  for (const auto& col : layout_.columns) columns_.emplace(col.name, open("scene/" + col.name));
}

ShardWriter ShardWriter::resume(const std::string& path, const ShardLayout& layout, const std::string& config_yaml) {
  h5::quiet_errors();
  ShardWriter w;
  w.path_ = path;
  w.layout_ = layout;
  const std::string tmp = w.partial_path();
  if (!std::filesystem::exists(tmp))
    throw InputError("nothing to resume: '" + tmp + "' does not exist (run without --resume)");
  hid_t f = H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw InputError("partial shard '" + tmp + "' is unreadable (killed mid-write?): delete it and start again");
  w.file_ = h5::Handle(f);
  const hid_t root = w.file_.get();
  if (!h5::has_attr(root, "config") || h5::get_attr_string(root, "config") != config_yaml)
    throw InputError("partial shard '" + tmp + "' was made with another configuration (or by a bsim whose config "
                     "has other keys): resume with the same config, flags and bsim, or delete it");
  if (h5::get_attr_int(root, "n_examples") != layout.n_examples)
    throw InputError("partial shard '" + tmp + "' was started for " + std::to_string(h5::get_attr_int(root, "n_examples")) +
                     " examples, not " + std::to_string(layout.n_examples) + ": use the same --rooms");
  w.n_done_ = h5::get_attr_int(root, "n_done");
  w.open_datasets();
  return w;
}

ShardWriter::~ShardWriter() {
  // Closing without finish() leaves the .partial file for --resume; destructors never throw.
}

void ShardWriter::write(const ShardBlock& b) {
  if (b.start != n_done_) throw RuntimeError("shard blocks must be written in order");
  const hsize_t T = hsize_t(layout_.n_samples);
  const size_t n_audio = size_t(b.count) * 2 * T;
  auto write_audio = [&](hid_t dset, const float* src, const uint16_t* src_half) {
    if (layout_.audio_dtype == "float16" && src_half) {  // converted by the producer (the GPU) already
      h5::write_rows(dset, h5::float16_type(), hsize_t(b.start), hsize_t(b.count), src_half);
    } else if (layout_.audio_dtype == "float16") {
      std::vector<uint16_t> half(n_audio);
      for (size_t i = 0; i < n_audio; ++i) half[i] = float_to_half(src[i]);
      h5::write_rows(dset, h5::float16_type(), hsize_t(b.start), hsize_t(b.count), half.data());
    } else {
      h5::write_rows(dset, H5T_NATIVE_FLOAT, hsize_t(b.start), hsize_t(b.count), src);
    }
  };
  write_audio(clean_.get(), b.clean, b.clean_half);
  write_audio(augmented_.get(), b.augmented, b.augmented_half);
  h5::write_rows(teacher_.get(), H5T_NATIVE_FLOAT, hsize_t(b.start), hsize_t(b.count), b.teacher);
  for (const auto& col : layout_.columns) {
    auto it = b.columns.find(col.name);
    if (it == b.columns.end() || it->second.size() != size_t(b.count) * col.width)
      throw RuntimeError("shard block lacks column " + col.name);
    h5::write_rows(columns_.at(col.name).get(), H5T_NATIVE_DOUBLE, hsize_t(b.start), hsize_t(b.count),
                   it->second.data());
  }
  n_done_ += b.count;
  h5::set_attr(file_.get(), "n_done", n_done_);
  h5::check_status(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flushing " + partial_path());
}

void ShardWriter::finish() {
  if (n_done_ != layout_.n_examples) throw RuntimeError("finish() before all examples were written");
  h5::set_attr(file_.get(), "complete", 1LL);
  columns_.clear();
  clean_.reset(), augmented_.reset(), teacher_.reset();
  file_.reset();
  std::error_code ec;
  std::filesystem::rename(partial_path(), path_, ec);  // atomic: replaces an old file (--force) in one step
  if (ec) throw RuntimeError("cannot rename '" + partial_path() + "' to '" + path_ + "': " + ec.message());
  closed_ = true;
}

void ShardWriter::abandon() {
  columns_.clear();
  clean_.reset(), augmented_.reset(), teacher_.reset();
  file_.reset();
  std::error_code ec;
  std::filesystem::remove(partial_path(), ec);
  closed_ = true;
}

ShardInfo read_shard_info(const std::string& path) {
  h5::quiet_errors();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError("shard '" + path + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError("'" + path + "' is not an HDF5 file");
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw InputError("shard '" + path + "' cannot be opened (corrupt or truncated?)");
  h5::Handle file(f);
  const hid_t root = file.get();
  ShardInfo info;
  info.path = path;
  if (!h5::has_attr(root, "format") || h5::get_attr_string(root, "format") != kShardFormat)
    throw InputError("'" + path + "' is not a bsim shard (no format=bsim-shard attribute)");
  info.format = kShardFormat;
  info.format_version = h5::get_attr_int(root, "format_version");
  if (info.format_version > kShardFormatVersion)
    throw InputError("shard '" + path + "' has format version " + std::to_string(info.format_version) +
                     "; this bsim reads up to " + std::to_string(kShardFormatVersion) + ": upgrade bsim");
  info.n_examples = h5::get_attr_int(root, "n_examples");
  info.n_done = h5::get_attr_int(root, "n_done");
  info.complete = h5::get_attr_int(root, "complete") == 1;
  info.fs_hz = h5::get_attr_double(root, "sample_rate_hz");
  info.n_samples = int(h5::get_attr_int(root, "n_samples"));
  for (const char* k : {"config", "bsim_version", "created", "teacher"})
    if (h5::has_attr(root, k)) {
      const std::string v = h5::get_attr_string(root, k);
      if (std::string(k) == "config") info.config_yaml = v;
      if (std::string(k) == "bsim_version") info.bsim_version = v;
      if (std::string(k) == "created") info.created = v;
      if (std::string(k) == "teacher") info.teacher = v;
    }
  {
    if (H5Lexists(root, "teacher", H5P_DEFAULT) > 0) {  // optional: a shard may hold audio and labels only
      h5::Handle d = h5::check(H5Dopen2(root, "teacher", H5P_DEFAULT), "opening /teacher");
      auto dims = h5::dims_of(d.get());
      if (dims.size() == 3) info.n_features = int(dims[1]), info.n_frames = int(dims[2]);
    }
    if (H5Lexists(root, "clean", H5P_DEFAULT) <= 0 || H5Lexists(root, "scene", H5P_DEFAULT) <= 0)
      throw InputError("shard '" + path + "' lacks /clean or /scene: not a complete bsim shard");
    h5::Handle a = h5::check(H5Dopen2(root, "clean", H5P_DEFAULT), "opening /clean");
    h5::Handle t = h5::check(H5Dget_type(a.get()), "type of /clean");
    info.audio_dtype = H5Tget_size(t.get()) == 2 ? "float16" : "float32";
  }
  h5::Handle scene = h5::check(H5Gopen2(root, "scene", H5P_DEFAULT), "opening /scene");
  hsize_t n_obj = 0;
  H5Gget_num_objs(scene.get(), &n_obj);
  for (hsize_t i = 0; i < n_obj; ++i) {
    char name[256];
    H5Gget_objname_by_idx(scene.get(), i, name, sizeof name);
    h5::Handle d = h5::check(H5Dopen2(scene.get(), name, H5P_DEFAULT), std::string("opening /scene/") + name);
    auto dims = h5::dims_of(d.get());
    if (dims.size() != 1 || info.n_done == 0) continue;
    std::vector<double> v(static_cast<size_t>(info.n_done));
    h5::read_rows(d.get(), H5T_NATIVE_DOUBLE, 0, hsize_t(info.n_done), v.data());
    info.columns[name] = std::move(v);
  }
  info.file_bytes = (long long)std::filesystem::file_size(path, ec);
  return info;
}

}  // namespace bsim

namespace bsim {

ShardReader::ShardReader(const std::string& path) : info_(read_shard_info(path)) {
  if (!info_.complete)
    throw InputError("shard '" + path + "' is incomplete (an interrupted run): finish it with bsim generate --resume");
  file_ = h5::check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + path);
}

bool ShardReader::has(const std::string& dataset) const {
  return H5Lexists(file_.get(), "scene", H5P_DEFAULT) >= 0 && H5Oexists_by_name(file_.get(), dataset.c_str(), H5P_DEFAULT) > 0;
}

namespace {
// Rows [start, start+count) of a dataset into out, converted by HDF5 to float or double (float16 by hand).
template <class T>
void read_rows_as(hid_t file, const ShardInfo& info, const std::string& dataset, long long start, int count,
                  std::vector<T>& out) {
  h5::Handle d = h5::check(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), "opening " + dataset);
  const auto dims = h5::dims_of(d.get());
  size_t row = 1;
  for (size_t i = 1; i < dims.size(); ++i) row *= size_t(dims[i]);
  if (start < 0 || start + count > (long long)dims[0])
    throw RuntimeError("shard '" + info.path + "': read past the end of " + dataset);
  out.resize(size_t(count) * row);
  h5::Handle t = h5::check(H5Dget_type(d.get()), "type of " + dataset);
  if (H5Tget_class(t.get()) == H5T_FLOAT && H5Tget_size(t.get()) == 2) {
    std::vector<uint16_t> half(out.size());
    h5::read_rows(d.get(), h5::float16_type(), hsize_t(start), hsize_t(count), half.data());
    for (size_t i = 0; i < half.size(); ++i) out[i] = T(half_to_float(half[i]));
  } else {
    h5::read_rows(d.get(), std::is_same<T, double>::value ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, hsize_t(start),
                  hsize_t(count), out.data());
  }
}
}  // namespace

void ShardReader::read(const std::string& dataset, long long start, int count, std::vector<float>& out) const {
  if (!has(dataset)) throw InputError("shard '" + info_.path + "' has no dataset '" + dataset + "'");
  read_rows_as(file_.get(), info_, dataset, start, count, out);
}

void ShardReader::read(const std::string& dataset, long long start, int count, std::vector<double>& out) const {
  if (!has(dataset)) throw InputError("shard '" + info_.path + "' has no dataset '" + dataset + "'");
  read_rows_as(file_.get(), info_, dataset, start, count, out);
}

std::vector<double> ShardReader::example_indices(long long start, int count) const {
  std::vector<double> out(static_cast<size_t>(count));
  if (has("scene/example_index")) read("scene/example_index", start, count, out);
  else std::iota(out.begin(), out.end(), double(start));
  return out;
}

}  // namespace bsim
