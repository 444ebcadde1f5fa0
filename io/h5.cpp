// HDF5 RAII helpers.
#include "io/h5.h"

#include "io/error.h"

namespace bsim::h5 {

void Handle::reset() noexcept {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

Handle check(hid_t id, const std::string& what) {
  if (id < 0) throw RuntimeError("HDF5: " + what + " failed");
  return Handle(id);
}

void check_status(herr_t status, const std::string& what) {
  if (status < 0) throw RuntimeError("HDF5: " + what + " failed");
}

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

hid_t float16_type() {
  static hid_t t = [] {
    hid_t h = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(h, 15, 10, 5, 0, 10);
    H5Tset_precision(h, 16);
    H5Tset_size(h, 2);
    H5Tset_ebias(h, 15);
    H5Tlock(h);
    return h;
  }();
  return t;
}

Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, int gzip_level) {
  Handle space = check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "dataspace for " + name);
  Handle dcpl = check(H5Pcreate(H5P_DATASET_CREATE), "property list for " + name);
  if (!chunk.empty()) {
    check_status(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), "chunking " + name);
    if (gzip_level > 0) {
      check_status(H5Pset_shuffle(dcpl.get()), "shuffle filter for " + name);
      check_status(H5Pset_deflate(dcpl.get(), unsigned(gzip_level)), "gzip filter for " + name);
    }
  }
  return check(H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
               "creating dataset " + name);
}

std::vector<hsize_t> dims_of(hid_t dset) {
  Handle space = check(H5Dget_space(dset), "dataspace");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

namespace {
void rows_io(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, void* data, bool write) {
  std::vector<hsize_t> dims = dims_of(dset);
  Handle fspace = check(H5Dget_space(dset), "dataspace");
  std::vector<hsize_t> offset(dims.size(), 0), cnt = dims;
  offset[0] = start;
  cnt[0] = count;
  check_status(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, offset.data(), nullptr, cnt.data(), nullptr),
               "selecting rows");
  Handle mspace = check(H5Screate_simple(int(cnt.size()), cnt.data(), nullptr), "memory dataspace");
  if (write)
    check_status(H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data), "writing rows");
  else
    check_status(H5Dread(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data), "reading rows");
}
}  // namespace

void write_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, const void* data) {
  rows_io(dset, mem_type, start, count, const_cast<void*>(data), true);
}
void read_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t count, void* data) {
  rows_io(dset, mem_type, start, count, data, false);
}

namespace {
void write_attr(hid_t obj, const std::string& name, hid_t type, const void* value) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle space = check(H5Screate(H5S_SCALAR), "attribute space");
  Handle attr = check(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), "attribute " + name);
  check_status(H5Awrite(attr.get(), type, value), "writing attribute " + name);
}
}  // namespace

void set_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type = check(H5Tcopy(H5T_C_S1), "string type");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr(obj, name, type.get(), &p);
}
void set_attr(hid_t obj, const std::string& name, long long value) { write_attr(obj, name, H5T_NATIVE_LLONG, &value); }
void set_attr(hid_t obj, const std::string& name, double value) { write_attr(obj, name, H5T_NATIVE_DOUBLE, &value); }

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

std::string get_attr_string(hid_t obj, const std::string& name) {
  Handle attr = check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name);
  Handle ftype = check(H5Aget_type(attr.get()), "attribute type");
  if (H5Tget_class(ftype.get()) != H5T_STRING) throw InputError("attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle type = check(H5Tcopy(H5T_C_S1), "string type");
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5Tget_cset(ftype.get()));
    char* p = nullptr;
    check_status(H5Aread(attr.get(), type.get(), &p), "reading attribute " + name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  const size_t n = H5Tget_size(ftype.get());
  std::string s(n, '\0');
  check_status(H5Aread(attr.get(), ftype.get(), s.data()), "reading attribute " + name);
  return s.substr(0, s.find('\0'));
}
long long get_attr_int(hid_t obj, const std::string& name) {
  Handle attr = check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name);
  long long v = 0;
  check_status(H5Aread(attr.get(), H5T_NATIVE_LLONG, &v), "reading attribute " + name);
  return v;
}
double get_attr_double(hid_t obj, const std::string& name) {
  Handle attr = check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "opening attribute " + name);
  double v = 0;
  check_status(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), "reading attribute " + name);
  return v;
}

void write_string_list(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  Handle type = check(H5Tcopy(H5T_C_S1), "string type");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  const hsize_t n = values.size();
  Handle space = check(H5Screate_simple(1, &n, nullptr), "string list space");
  Handle d = check(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "creating " + name);
  if (n) check_status(H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "writing " + name);
}

}  // namespace bsim::h5
