// A thin RAII layer over the HDF5 C API: every hid_t has an owner, every failing call throws with context.
#pragma once
#include <hdf5.h>

#include <string>
#include <vector>

namespace bsim::h5 {

// Owns one HDF5 identifier and closes it with the right H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) reset(), id_ = o.id_, o.id_ = H5I_INVALID_HID;
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Throws RuntimeError("<what>: <HDF5 message>") when id < 0; returns an owning Handle otherwise.
Handle check(hid_t id, const std::string& what);
void check_status(herr_t status, const std::string& what);

// Silences HDF5's automatic error stack printing for the process (we report errors ourselves).
void quiet_errors();

// IEEE half precision as an HDF5 type (HDF5 1.10 has none built in); h5py reads it as float16.
hid_t float16_type();

Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, int gzip_level);
// Writes rows [start, start+count) along dimension 0 from a contiguous buffer of mem_type.
void write_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, const void* data);
void read_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, void* data);
std::vector<hsize_t> dims_of(hid_t dset);

void set_attr(hid_t obj, const std::string& name, const std::string& value);
void set_attr(hid_t obj, const std::string& name, long long value);
void set_attr(hid_t obj, const std::string& name, double value);
bool has_attr(hid_t obj, const std::string& name);
std::string get_attr_string(hid_t obj, const std::string& name);
long long get_attr_int(hid_t obj, const std::string& name);
double get_attr_double(hid_t obj, const std::string& name);

void write_string_list(hid_t loc, const std::string& name, const std::vector<std::string>& values);

}  // namespace bsim::h5
