// HDF5 reading and writing over the C API: handles owned by RAII closers, HDF5's own error printing
// switched off around our calls, and its error stack folded into the wanbatch::Error we throw.
#include "io/hdf5_file.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>

#include "core/error.h"
#include "io/atomic_file.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Shape;
using core::Tensor;

// Chunks near this size keep partial reads cheap without making the chunk index large.
constexpr uint64_t kChunkTargetBytes = uint64_t{1} << 20;

// The serial library has global state (the error stack, its object tables): one caller at a time.
std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

// Held around every HDF5 call of ours: takes the lock and switches off the library's automatic
// printing of its error stack (we report errors ourselves), restoring whatever handler was set so
// that other HDF5 users in the process keep their behaviour.
class Hdf5Call {
 public:
  Hdf5Call() : lock_(hdf5_mutex()) {
    H5Eget_auto2(H5E_DEFAULT, &saved_func_, &saved_data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Hdf5Call() { H5Eset_auto2(H5E_DEFAULT, saved_func_, saved_data_); }
  Hdf5Call(const Hdf5Call&) = delete;
  Hdf5Call& operator=(const Hdf5Call&) = delete;

 private:
  std::lock_guard<std::recursive_mutex> lock_;
  H5E_auto2_t saved_func_ = nullptr;
  void* saved_data_ = nullptr;
};

// Owns one hid_t and closes it with the matching H5*close when it goes.
class Hid {
 public:
  using Close = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Close close) : id_(id), close_(close) {}
  ~Hid() { reset(); }
  Hid(Hid&& other) noexcept
      : id_(std::exchange(other.id_, H5I_INVALID_HID)), close_(other.close_) {}
  Hid& operator=(Hid&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      close_ = other.close_;
    }
    return *this;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; the status matters for files, whose close is where buffered data reaches disk.
  herr_t close() {
    if (!valid()) return 0;
    Hdf5Call call;
    return close_(std::exchange(id_, H5I_INVALID_HID));
  }
  // Closes where a failure has nobody to be reported to (destructors); clears the error stack so
  // that it does not leak into a later message.
  void reset() {
    if (close() < 0) {
      Hdf5Call call;
      H5Eclear2(H5E_DEFAULT);
    }
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Close close_ = nullptr;
};

// The library's explanation of the last failure, outermost and innermost descriptions ("unable to
// open file (file signature not found)"), then clears the stack.
std::string take_hdf5_error() {
  struct Walk {
    std::string outer;
    std::string inner;
  } walk;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* error, void* data) -> herr_t {
        auto* w = static_cast<Walk*>(data);
        const std::string desc = error->desc ? error->desc : "";
        if (n == 0) w->outer = desc;
        w->inner = desc;
        return 0;
      },
      &walk);
  H5Eclear2(H5E_DEFAULT);
  if (walk.outer.empty()) return "HDF5 error";
  if (walk.inner == walk.outer) return walk.outer;
  return walk.outer + " (" + walk.inner + ")";
}

[[noreturn]] void throw_hdf5_error(const char* call, const char* file, int line,
                                   const std::string& context) {
  throw make_error(context, ": ", take_hdf5_error(), " [", fs::path(file).filename().string(), ":",
                   line, " ", call, "]");
}

}  // namespace

// Evaluates an HDF5 call returning herr_t, htri_t or hid_t and yields its value; a negative one
// throws an Error: the context (which names the file and the dataset or attribute), the library's
// message, and where in our code.
#define H5_CHECK(call, ...)                                                                 \
  ([&] {                                                                                    \
    const auto wb_h5_result_ = (call);                                                      \
    if (wb_h5_result_ < 0) {                                                                \
      throw_hdf5_error(#call, __FILE__, __LINE__, ::wanbatch::detail::concat(__VA_ARGS__)); \
    }                                                                                       \
    return wb_h5_result_;                                                                   \
  }())

namespace {

// A readable name for a stored type, for messages: "uint8", "float64", "string", "compound".
std::string type_name(hid_t type) {
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_COMPOUND:
      return "compound";
    case H5T_REFERENCE:
      return "reference";
    case H5T_ENUM:
      return "enum";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_ARRAY:
      return "array";
    case H5T_TIME:
      return "time";
    default:
      return "unknown type";
  }
}

// File access with best-effort locking (Debian's build default, made explicit for the others):
// lock where the file system supports it, carry on where it has locks disabled (Lustre or NFS
// mounted without flock, common on clusters) instead of failing to open anything;
// HDF5_USE_FILE_LOCKING in the environment still overrides this. HDF5 refuses to open a file
// twice in one process with different locking settings, so code that opens our files with the raw
// API while one of these objects holds them open must close them first.
Hid file_access_plist() {
  Hid fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), "HDF5 file access property list"), H5Pclose);
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
  H5_CHECK(H5Pset_file_locking(fapl.get(), true, true), "HDF5 file locking setting");
#endif
  return fapl;
}

// Whether every component of `name` ("a/b/c") exists; H5Lexists itself fails, rather than saying
// no, when an intermediate group is missing.
bool link_exists(hid_t file, const std::string& name, const std::string& path) {
  if (name.empty()) return false;
  size_t pos = name.front() == '/' ? 1 : 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string::npos) slash = name.size();
    if (slash > pos) {
      const std::string prefix = name.substr(0, slash);
      if (H5_CHECK(H5Lexists(file, prefix.c_str(), H5P_DEFAULT), "looking up '", prefix, "' in ",
                   path) <= 0) {
        return false;
      }
    }
    pos = slash + 1;
  }
  return true;
}

// The shape of a dataspace: {} for a scalar; a null dataspace (no data at all) throws.
Shape dataspace_shape(hid_t space, const std::string& what) {
  const H5S_class_t kind = H5Sget_simple_extent_type(space);
  if (kind == H5S_SCALAR) return {};
  if (kind != H5S_SIMPLE) throw make_error(what, " holds no data (null dataspace)");
  const int ndims = H5_CHECK(H5Sget_simple_extent_ndims(space), what, ": reading its rank");
  std::vector<hsize_t> dims(static_cast<size_t>(ndims));
  H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr), what, ": reading its shape");
  return Shape(dims.begin(), dims.end());
}

// Chunk shape for a non-empty array: trailing dimensions whole and the leading one split so that
// a chunk stays within kChunkTargetBytes; rows too big for that are split further, dimension by
// dimension (HDF5 limits a chunk to 4 GiB).
std::vector<hsize_t> chunk_shape(const Shape& shape, size_t element_bytes) {
  std::vector<hsize_t> chunk(shape.begin(), shape.end());
  auto bytes_from = [&](size_t first) {
    uint64_t bytes = element_bytes;
    for (size_t i = first; i < chunk.size(); ++i) bytes *= chunk[i];
    return bytes;
  };
  for (size_t i = 0; i < chunk.size() && bytes_from(0) > kChunkTargetBytes; ++i) {
    chunk[i] = std::max<uint64_t>(1, kChunkTargetBytes / bytes_from(i + 1));
  }
  return chunk;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hdf5Reader

struct Hdf5Reader::Impl {
  std::string path;
  Hid file;

  std::string dataset_where(const std::string& name) const {
    return "dataset '" + name + "' in " + path;
  }
  std::string attribute_where(const std::string& name) const {
    return "attribute '" + name + "' of " + path;
  }

  bool has(const std::string& name) const {
    if (!link_exists(file.get(), name, path)) return false;
    Hid object(
        H5_CHECK(H5Oopen(file.get(), name.c_str(), H5P_DEFAULT), "opening '", name, "' in ", path),
        H5Oclose);
    return H5Iget_type(object.get()) == H5I_DATASET;
  }

  std::vector<std::string> names() const {
    H5G_info_t info;
    H5_CHECK(H5Gget_info(file.get(), &info), "listing the root group of ", path);
    std::vector<std::string> result;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      const ssize_t size = H5_CHECK(H5Lget_name_by_idx(file.get(), ".", H5_INDEX_NAME, H5_ITER_INC,
                                                       i, nullptr, 0, H5P_DEFAULT),
                                    "listing the root group of ", path);
      std::string name(static_cast<size_t>(size) + 1, '\0');
      H5_CHECK(H5Lget_name_by_idx(file.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                  name.size(), H5P_DEFAULT),
               "listing the root group of ", path);
      name.resize(static_cast<size_t>(size));
      result.push_back(std::move(name));
    }
    std::sort(result.begin(), result.end());
    return result;
  }

  Hid open_dataset(const std::string& name) const {
    if (!has(name)) {
      std::string listing;
      for (const std::string& n : names()) listing += (listing.empty() ? "" : ", ") + n;
      throw make_error("no dataset '", name, "' in ", path,
                       " (it has: ", listing.empty() ? "nothing" : listing, ")");
    }
    return Hid(
        H5_CHECK(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), "opening ", dataset_where(name)),
        H5Dclose);
  }

  Shape shape(hid_t dataset, const std::string& name) const {
    Hid space(H5_CHECK(H5Dget_space(dataset), "reading the dataspace of ", dataset_where(name)),
              H5Sclose);
    return dataspace_shape(space.get(), dataset_where(name));
  }

  // Opens the attribute and checks it holds one element; nullopt when absent.
  std::optional<Hid> open_attribute(const std::string& name) const {
    if (H5_CHECK(H5Aexists(file.get(), name.c_str()), "looking up ", attribute_where(name)) <= 0) {
      return std::nullopt;
    }
    Hid attr(
        H5_CHECK(H5Aopen(file.get(), name.c_str(), H5P_DEFAULT), "opening ", attribute_where(name)),
        H5Aclose);
    Hid space(H5_CHECK(H5Aget_space(attr.get()), "reading ", attribute_where(name)), H5Sclose);
    const Shape shape = dataspace_shape(space.get(), attribute_where(name));
    if (core::shape_numel(shape) != 1) {
      throw make_error(attribute_where(name), " has shape ", core::shape_str(shape),
                       "; expected a single value");
    }
    return attr;
  }

  Hid attribute_type(hid_t attr, const std::string& name) const {
    return Hid(H5_CHECK(H5Aget_type(attr), "reading the type of ", attribute_where(name)),
               H5Tclose);
  }
};

Hdf5Reader::Hdf5Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Hdf5Reader::~Hdf5Reader() = default;
Hdf5Reader::Hdf5Reader(Hdf5Reader&&) noexcept = default;
Hdf5Reader& Hdf5Reader::operator=(Hdf5Reader&&) noexcept = default;

Hdf5Reader Hdf5Reader::open(const std::string& path) {
  Hdf5Call call;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw make_error("cannot open HDF5 file ", path, ": no such file");
  if (fs::is_directory(path, ec)) {
    throw make_error("cannot open HDF5 file ", path, ": it is a directory");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const Hid fapl = file_access_plist();
  impl->file = Hid(
      H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), "cannot open HDF5 file ", path),
      H5Fclose);
  return Hdf5Reader(std::move(impl));
}

const std::string& Hdf5Reader::path() const { return impl_->path; }

std::vector<std::string> Hdf5Reader::names() const {
  Hdf5Call call;
  return impl_->names();
}

bool Hdf5Reader::has(const std::string& name) const {
  Hdf5Call call;
  return impl_->has(name);
}

Shape Hdf5Reader::shape(const std::string& name) const {
  Hdf5Call call;
  const Hid dataset = impl_->open_dataset(name);
  return impl_->shape(dataset.get(), name);
}

Tensor Hdf5Reader::read_f32(const std::string& name, int rank) const {
  Tensor t = read(name);
  if (t.ndim() == rank + 1 && t.dim(0) == 1) {
    t = t.reshape(core::Shape(t.shape().begin() + 1, t.shape().end()));
  }
  WB_CHECK(t.ndim() == rank, "dataset '", name, "' in ", path(), " has shape ",
           core::shape_str(t.shape()), "; expected ", rank, " dimensions");
  return t.dtype() == core::DType::F32 ? t : t.to(core::DType::F32);
}

Tensor Hdf5Reader::read(const std::string& name) const {
  Hdf5Call call;
  const Hid dataset = impl_->open_dataset(name);
  const Shape shape = impl_->shape(dataset.get(), name);
  const Hid type(
      H5_CHECK(H5Dget_type(dataset.get()), "reading the type of ", impl_->dataset_where(name)),
      H5Tclose);
  const H5T_class_t type_class = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  hid_t memory_type;
  DType dtype;
  // HDF5 converts on read (byte order, f16/f64 → f32, int32 → int64), so one buffer suffices.
  if (type_class == H5T_FLOAT) {
    memory_type = H5T_NATIVE_FLOAT;
    dtype = DType::F32;
  } else if (type_class == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_2 &&
             (size == 4 || size == 8)) {
    memory_type = H5T_NATIVE_INT64;
    dtype = DType::I64;
  } else {
    throw make_error(impl_->dataset_where(name), " has type ", type_name(type.get()),
                     "; expected floating point (read as f32) or int32/int64 (read as i64)");
  }
  Tensor tensor = Tensor::empty(shape, dtype);
  if (tensor.numel() > 0) {
    H5_CHECK(H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw()),
             "reading ", impl_->dataset_where(name));
  }
  return tensor;
}

std::optional<std::string> Hdf5Reader::attribute_string(const std::string& name) const {
  Hdf5Call call;
  const std::optional<Hid> attr = impl_->open_attribute(name);
  if (!attr) return std::nullopt;
  const Hid type = impl_->attribute_type(attr->get(), name);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw make_error(impl_->attribute_where(name), " is ", type_name(type.get()), ", not a string");
  }
  if (H5_CHECK(H5Tis_variable_str(type.get()), "reading ", impl_->attribute_where(name)) > 0) {
    const Hid memory_type(H5_CHECK(H5Tcopy(H5T_C_S1), "string type"), H5Tclose);
    H5_CHECK(H5Tset_size(memory_type.get(), H5T_VARIABLE), "string type");
    H5_CHECK(H5Tset_cset(memory_type.get(), H5Tget_cset(type.get())), "string type");
    char* text = nullptr;
    H5_CHECK(H5Aread(attr->get(), memory_type.get(), &text), "reading ",
             impl_->attribute_where(name));
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  // Fixed length, read as stored: the text runs to the first NUL or, space-padded, to the last
  // non-space (the padding conventions of C and of Fortran writers).
  std::string value(H5Tget_size(type.get()), '\0');
  H5_CHECK(H5Aread(attr->get(), type.get(), value.data()), "reading ",
           impl_->attribute_where(name));
  value.resize(std::strlen(value.c_str()));
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    value.erase(value.find_last_not_of(' ') + 1);
  }
  return value;
}

std::optional<double> Hdf5Reader::attribute_number(const std::string& name) const {
  Hdf5Call call;
  const std::optional<Hid> attr = impl_->open_attribute(name);
  if (!attr) return std::nullopt;
  const Hid type = impl_->attribute_type(attr->get(), name);
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER) {
    throw make_error(impl_->attribute_where(name), " is ", type_name(type.get()), ", not a number");
  }
  double value = 0;
  H5_CHECK(H5Aread(attr->get(), H5T_NATIVE_DOUBLE, &value), "reading ",
           impl_->attribute_where(name));
  return value;
}

std::optional<int64_t> Hdf5Reader::attribute_integer(const std::string& name) const {
  Hdf5Call call;
  const std::optional<Hid> attr = impl_->open_attribute(name);
  if (!attr) return std::nullopt;
  const Hid type = impl_->attribute_type(attr->get(), name);
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class == H5T_INTEGER) {
    // Read unsigned values as such: HDF5 would clamp a uint64 above INT64_MAX without a word.
    if (H5Tget_sign(type.get()) == H5T_SGN_NONE && H5Tget_size(type.get()) >= 8) {
      uint64_t value = 0;
      H5_CHECK(H5Aread(attr->get(), H5T_NATIVE_UINT64, &value), "reading ",
               impl_->attribute_where(name));
      if (!std::in_range<int64_t>(value)) {
        throw make_error(impl_->attribute_where(name), " = ", value, " does not fit in int64");
      }
      return static_cast<int64_t>(value);
    }
    int64_t value = 0;
    H5_CHECK(H5Aread(attr->get(), H5T_NATIVE_INT64, &value), "reading ",
             impl_->attribute_where(name));
    return value;
  }
  if (type_class == H5T_FLOAT) {
    // Accepted when whole, as Python writers often store counts and seeds as floats.
    double value = 0;
    H5_CHECK(H5Aread(attr->get(), H5T_NATIVE_DOUBLE, &value), "reading ",
             impl_->attribute_where(name));
    if (std::trunc(value) != value || std::abs(value) >= 9223372036854775808.0) {
      throw make_error(impl_->attribute_where(name), " = ", value, " is not an integer");
    }
    return static_cast<int64_t>(value);
  }
  throw make_error(impl_->attribute_where(name), " is ", type_name(type.get()), ", not an integer");
}

std::optional<uint64_t> Hdf5Reader::attribute_unsigned(const std::string& name) const {
  Hdf5Call call;
  const std::optional<Hid> attr = impl_->open_attribute(name);
  if (!attr) return std::nullopt;
  const Hid type = impl_->attribute_type(attr->get(), name);
  if (H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE) {
    uint64_t value = 0;
    H5_CHECK(H5Aread(attr->get(), H5T_NATIVE_UINT64, &value), "reading ",
             impl_->attribute_where(name));
    return value;
  }
  const std::optional<int64_t> value = attribute_integer(name);
  if (value && *value < 0) {
    throw make_error(impl_->attribute_where(name), " = ", *value, " is negative");
  }
  return value ? std::optional<uint64_t>(static_cast<uint64_t>(*value)) : std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Hdf5Writer

struct Hdf5Writer::Impl {
  // Declared before `file` so that it is destroyed after it: the file is closed before the
  // temporary is removed.
  AtomicFile atomic;
  Hid file;
  bool committed = false;

  explicit Impl(const std::string& path) : atomic(path) {}

  std::string dataset_where(const std::string& name) const {
    return "dataset '" + name + "' in " + atomic.path();
  }
  std::string attribute_where(const std::string& name) const {
    return "attribute '" + name + "' of " + atomic.path();
  }
  void check_open(const std::string& what) const {
    if (committed) throw make_error("cannot write ", what, ": the file was already committed");
  }

  // A scalar root-group attribute, replacing an existing one of the same name.
  void set_attribute(const std::string& name, hid_t file_type, hid_t memory_type,
                     const void* value) {
    const std::string where = attribute_where(name);
    check_open(where);
    WB_CHECK(!name.empty(), "cannot write an attribute without a name to ", atomic.path());
    if (H5_CHECK(H5Aexists(file.get(), name.c_str()), "looking up ", where) > 0) {
      H5_CHECK(H5Adelete(file.get(), name.c_str()), "replacing ", where);
    }
    const Hid space(H5_CHECK(H5Screate(H5S_SCALAR), "creating ", where), H5Sclose);
    const Hid acpl(H5_CHECK(H5Pcreate(H5P_ATTRIBUTE_CREATE), "creating ", where), H5Pclose);
    H5_CHECK(H5Pset_char_encoding(acpl.get(), H5T_CSET_UTF8), "creating ", where);
    const Hid attr(H5_CHECK(H5Acreate2(file.get(), name.c_str(), file_type, space.get(), acpl.get(),
                                       H5P_DEFAULT),
                            "creating ", where),
                   H5Aclose);
    H5_CHECK(H5Awrite(attr.get(), memory_type, value), "writing ", where);
  }
};

Hdf5Writer::Hdf5Writer(const std::string& path) : impl_(std::make_unique<Impl>(path)) {
  Hdf5Call call;
  const Hid fapl = file_access_plist();
  // Strong close: closing the file closes anything still open in it, so commit() renames a file
  // that is complete on disk.
  H5_CHECK(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "HDF5 file close setting");
  const std::string& temp = impl_->atomic.temp_path();
  impl_->file = Hid(H5_CHECK(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                             "cannot create HDF5 file ", temp, " (for ", path, ")"),
                    H5Fclose);
}

Hdf5Writer::~Hdf5Writer() = default;
Hdf5Writer::Hdf5Writer(Hdf5Writer&&) noexcept = default;
Hdf5Writer& Hdf5Writer::operator=(Hdf5Writer&&) noexcept = default;

const std::string& Hdf5Writer::path() const { return impl_->atomic.path(); }

void Hdf5Writer::write(const std::string& name, const Tensor& tensor) {
  Hdf5Call call;
  const std::string where = impl_->dataset_where(name);
  impl_->check_open(where);
  WB_CHECK(!name.empty(), "cannot write a dataset without a name to ", impl_->atomic.path());
  WB_CHECK(tensor.defined(), "cannot write ", where, ": the tensor is undefined");
  if (link_exists(impl_->file.get(), name, impl_->atomic.path())) {
    throw make_error("cannot write ", where, ": it was already written");
  }

  Tensor host = tensor.device().is_cpu() ? tensor : tensor.to(core::Device::cpu());
  hid_t file_type;
  hid_t memory_type;
  if (core::is_floating(host.dtype())) {
    // bf16/f16/f8 have no HDF5 equivalent that h5py and h5dump read everywhere; f32 is exact.
    if (host.dtype() != DType::F32) host = host.to(DType::F32);
    file_type = H5T_IEEE_F32LE;
    memory_type = H5T_NATIVE_FLOAT;
  } else {
    // HDF5 widens i32 to the stored int64 during the write.
    file_type = H5T_STD_I64LE;
    memory_type = host.dtype() == DType::I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
  }

  const Shape& shape = host.shape();
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  const Hid space(H5_CHECK(shape.empty() ? H5Screate(H5S_SCALAR)
                                         : H5Screate_simple(static_cast<int>(dims.size()),
                                                            dims.data(), nullptr),
                           "creating the dataspace ", core::shape_str(shape), " of ", where),
                  H5Sclose);
  const Hid dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), "creating ", where), H5Pclose);
  // Scalars cannot be chunked, and empty arrays cannot either (a chunk dimension must be at least
  // one yet no larger than a fixed dimension): those are stored contiguously.
  if (!shape.empty() && host.numel() > 0) {
    const std::vector<hsize_t> chunk = chunk_shape(shape, H5Tget_size(file_type));
    H5_CHECK(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
             "setting the chunk shape of ", where);
  }
  const Hid lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE), "creating ", where), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1), "creating ", where);
  H5_CHECK(H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8), "creating ", where);
  const Hid dataset(H5_CHECK(H5Dcreate2(impl_->file.get(), name.c_str(), file_type, space.get(),
                                        lcpl.get(), dcpl.get(), H5P_DEFAULT),
                             "creating ", where),
                    H5Dclose);
  if (host.numel() > 0) {
    H5_CHECK(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw()),
             "writing ", where, " (", host.describe(), ")");
  }
}

void Hdf5Writer::attribute(const std::string& name, const std::string& value) {
  Hdf5Call call;
  const std::string where = impl_->attribute_where(name);
  // A C string cannot carry NULs; refuse rather than store a silently shortened value.
  WB_CHECK(value.find('\0') == std::string::npos, "cannot write ", where,
           ": the string contains a NUL character");
  const Hid type(H5_CHECK(H5Tcopy(H5T_C_S1), "creating ", where), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE), "creating ", where);
  H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), "creating ", where);
  const char* text = value.c_str();
  impl_->set_attribute(name, type.get(), type.get(), &text);
}

void Hdf5Writer::attribute(const std::string& name, double value) {
  Hdf5Call call;
  impl_->set_attribute(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void Hdf5Writer::attribute(const std::string& name, int64_t value) {
  Hdf5Call call;
  impl_->set_attribute(name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void Hdf5Writer::attribute_unsigned(const std::string& name, uint64_t value) {
  Hdf5Call call;
  impl_->set_attribute(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void Hdf5Writer::attribute_integral(const std::string& name, bool fits, int64_t value) {
  if (!fits) {
    throw make_error("cannot write ", impl_->attribute_where(name),
                     ": the value does not fit in int64");
  }
  attribute(name, value);
}

void Hdf5Writer::commit() {
  Hdf5Call call;
  const std::string& path = impl_->atomic.path();
  impl_->check_open(path);
  H5_CHECK(H5Fflush(impl_->file.get(), H5F_SCOPE_LOCAL), "flushing ", impl_->atomic.temp_path(),
           " (for ", path, ")");
  if (impl_->file.close() < 0) {
    throw make_error("closing ", impl_->atomic.temp_path(), " (for ", path,
                     ") failed: ", take_hdf5_error());
  }
  impl_->atomic.commit();
  impl_->committed = true;
}

}  // namespace wanbatch::io
