#include "io/pytorch_file.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/pickle_reader.h"

namespace wanbatch::io {
namespace {

using pickle::Value;
using pickle::ValuePtr;
using Kind = pickle::Value::Kind;

// ---------------------------------------------------------------------------------------------
// The ZIP container (PKWARE APPNOTE.TXT sections 4.3.7 local header, 4.3.12 central directory
// header, 4.3.14-4.3.16 end records, 4.5.3 ZIP64 extra field). PyTorch's writer (miniz, through
// caffe2/serialize/inline_container.cc) stores every entry, pads the local header's extra field so
// data starts 64-byte aligned, and always writes the ZIP64 end records.

uint16_t le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
uint32_t le32(const char* p) { return le16(p) | (static_cast<uint32_t>(le16(p + 2)) << 16); }
uint64_t le64(const char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kZip64EndSize = 56;
constexpr uint64_t kMaxComment = 0xffff;
constexpr uint32_t kSaturated32 = 0xffffffff;  // "see the ZIP64 extra field"

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_offset = 0;
};

// Explains a file without a ZIP end record: the legacy formats torch.save wrote before 1.6, a
// truncated archive, or something else.
[[noreturn]] void reject_non_zip(const MappedFile& file) {
  const char* d = file.data();
  const size_t size = file.size();
  if (size >= 2 && static_cast<unsigned char>(d[0]) == 0x80 &&
      static_cast<unsigned char>(d[1]) <= 5) {
    throw make_error(file.path(),
                     ": legacy torch.save format (PyTorch < 1.6, a bare pickle stream) is not read;"
                     " re-save it with a recent PyTorch");
  }
  if (size >= 262 && std::memcmp(d + 257, "ustar", 5) == 0) {
    throw make_error(file.path(),
                     ": legacy torch.save tar format (PyTorch < 0.4) is not read; re-save it with a"
                     " recent PyTorch");
  }
  if (size >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) {
    throw make_error(file.path(), ": ZIP archive without its end-of-central-directory record (",
                     size, " bytes; truncated?)");
  }
  throw make_error(file.path(), ": not a PyTorch file (torch.save writes a ZIP archive; ", size,
                   " bytes)");
}

class ZipArchive {
 public:
  explicit ZipArchive(const MappedFile& file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  // The bytes of a stored entry, located through its local header and checked to lie in the file.
  const char* data(const ZipEntry& entry) const;

 private:
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw make_error(file_.path(), ": ", args...);
  }
  void read_zip64_extra(const char* extra, uint64_t length, ZipEntry& entry, bool need_size,
                        bool need_compressed, bool need_offset) const;

  const MappedFile& file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t directory_offset_ = 0;  // entry data all lies before the central directory
};

ZipArchive::ZipArchive(const MappedFile& file) : file_(file) {
  const char* d = file.data();
  const uint64_t size = file.size();

  // The end record is the last 22 bytes but for a comment of up to 64 KiB; scan back for it.
  uint64_t end = UINT64_MAX;
  if (size >= kEndSize) {
    const uint64_t lowest = size - kEndSize > kMaxComment ? size - kEndSize - kMaxComment : 0;
    for (uint64_t pos = size - kEndSize + 1; pos-- > lowest;) {
      if (le32(d + pos) == kEndSignature && pos + kEndSize + le16(d + pos + 20) == size) {
        end = pos;
        break;
      }
    }
  }
  if (end == UINT64_MAX) reject_non_zip(file);

  uint64_t count = le16(d + end + 10);
  uint64_t directory_size = le32(d + end + 12);
  uint64_t directory_offset = le32(d + end + 16);
  uint64_t directory_limit = end;  // where the central directory must end
  if (le16(d + end + 4) != 0 || le16(d + end + 6) != 0)
    fail("multi-disk ZIP archives are not read");
  if (end >= kZip64LocatorSize && le32(d + end - kZip64LocatorSize) == kZip64LocatorSignature) {
    const uint64_t locator = end - kZip64LocatorSize;
    const uint64_t record = le64(d + locator + 8);
    if (record > locator || locator - record < kZip64EndSize ||
        le32(d + record) != kZip64EndSignature) {
      fail("ZIP64 end-of-central-directory record missing or damaged (truncated?)");
    }
    count = le64(d + record + 32);
    directory_size = le64(d + record + 40);
    directory_offset = le64(d + record + 48);
    directory_limit = record;
  } else if (count == 0xffff || directory_size == kSaturated32 ||
             directory_offset == kSaturated32) {
    fail("ZIP64 archive without its ZIP64 end-of-central-directory record (truncated?)");
  }
  if (directory_offset > directory_limit || directory_size > directory_limit - directory_offset) {
    fail("ZIP central directory (", directory_size, " bytes at ", directory_offset,
         ") lies outside the file (truncated?)");
  }
  directory_offset_ = directory_offset;

  uint64_t pos = directory_offset;
  const uint64_t directory_end = directory_offset + directory_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (directory_end - pos < kCentralHeaderSize || le32(d + pos) != kCentralHeaderSignature) {
      fail("ZIP central directory entry ", i, " of ", count, " is damaged");
    }
    const char* h = d + pos;
    const uint64_t name_length = le16(h + 28), extra_length = le16(h + 30);
    const uint64_t comment_length = le16(h + 32);
    if (directory_end - pos - kCentralHeaderSize < name_length + extra_length + comment_length) {
      fail("ZIP central directory entry ", i, " of ", count, " runs past the directory");
    }
    ZipEntry entry;
    entry.flags = le16(h + 8);
    entry.method = le16(h + 10);
    entry.compressed_size = le32(h + 20);
    entry.size = le32(h + 24);
    entry.local_offset = le32(h + 42);
    entry.name.assign(h + kCentralHeaderSize, name_length);
    read_zip64_extra(h + kCentralHeaderSize + name_length, extra_length, entry,
                     entry.size == kSaturated32, entry.compressed_size == kSaturated32,
                     entry.local_offset == kSaturated32);
    index_.emplace(entry.name, entries_.size());  // a repeated name: the first one counts
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + name_length + extra_length + comment_length;
  }
}

// The ZIP64 extra field (id 1) holds, in this order, exactly the values whose 32-bit fields are
// saturated: uncompressed size, compressed size, local header offset (then a disk number).
void ZipArchive::read_zip64_extra(const char* extra, uint64_t length, ZipEntry& entry,
                                  bool need_size, bool need_compressed, bool need_offset) const {
  if (!need_size && !need_compressed && !need_offset) return;
  uint64_t at = 0;
  while (length - at >= 4) {
    const uint16_t id = le16(extra + at), field_length = le16(extra + at + 2);
    if (length - at - 4 < field_length) break;
    if (id == 1) {
      const char* field = extra + at + 4;
      uint64_t used = 0;
      auto next = [&](uint64_t& value) {
        if (field_length - used < 8)
          fail("ZIP64 extra field of entry '", entry.name, "' too short");
        value = le64(field + used);
        used += 8;
      };
      if (need_size) next(entry.size);
      if (need_compressed) next(entry.compressed_size);
      if (need_offset) next(entry.local_offset);
      return;
    }
    at += 4 + field_length;
  }
  fail("ZIP entry '", entry.name, "' needs a ZIP64 extra field it does not have");
}

const char* ZipArchive::data(const ZipEntry& entry) const {
  if (entry.flags & 1) fail("ZIP entry '", entry.name, "' is encrypted");
  if (entry.method != 0) {
    fail("ZIP entry '", entry.name, "' is compressed (method ", entry.method,
         "); torch.save stores entries uncompressed");
  }
  if (entry.compressed_size != entry.size) {
    fail("ZIP entry '", entry.name, "' is stored but its sizes differ (", entry.compressed_size,
         " and ", entry.size, ")");
  }
  const char* d = file_.data();
  const uint64_t header = entry.local_offset;
  if (header > directory_offset_ || directory_offset_ - header < kLocalHeaderSize ||
      le32(d + header) != kLocalHeaderSignature) {
    fail("ZIP local header of entry '", entry.name, "' at ", header, " is missing or damaged");
  }
  const uint64_t start = header + kLocalHeaderSize + le16(d + header + 26) + le16(d + header + 28);
  if (start > directory_offset_ || entry.size > directory_offset_ - start) {
    fail("ZIP entry '", entry.name, "' (", entry.size, " bytes at ", start,
         ") runs past the archive's data (truncated?)");
  }
  return d + start;
}

// ---------------------------------------------------------------------------------------------
// What the pickle of a state dict means: torch/serialization.py (_save's persistent_id, _load's
// persistent_load), torch/_tensor.py (Tensor._reduce_ex_internal), torch/_utils.py
// (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter), torch/storage.py
// (_dtype_to_storage_type_map, _new_dtypes).

// How an element of a torch dtype becomes one of a core tensor.
enum class Element {
  kF32,
  kBF16,
  kF16,
  kF8E4M3,
  kI64,
  kI32,
  kF64,
  kI16,
  kI8,
  kU8,
  kBool,
  kU16,
  kU32,
  kNone
};

struct TorchDtype {
  const char* name;  // torch.<name>
  size_t size;       // bytes per element
  Element element;   // kNone: a dtype wanbatch does not read
};

constexpr TorchDtype kDtypes[] = {
    {"float32", 4, Element::kF32},
    {"bfloat16", 2, Element::kBF16},
    {"float16", 2, Element::kF16},
    {"float8_e4m3fn", 1, Element::kF8E4M3},
    {"int64", 8, Element::kI64},
    {"int32", 4, Element::kI32},
    {"float64", 8, Element::kF64},
    {"int16", 2, Element::kI16},
    {"int8", 1, Element::kI8},
    {"uint8", 1, Element::kU8},
    {"bool", 1, Element::kBool},
    {"uint16", 2, Element::kU16},
    {"uint32", 4, Element::kU32},
    {"uint64", 8, Element::kNone},
    {"float8_e5m2", 1, Element::kNone},
    {"float8_e4m3fnuz", 1, Element::kNone},
    {"float8_e5m2fnuz", 1, Element::kNone},
    {"float8_e8m0fnu", 1, Element::kNone},
    {"float4_e2m1fn_x2", 1, Element::kNone},
    {"complex32", 4, Element::kNone},
    {"complex64", 8, Element::kNone},
    {"complex128", 16, Element::kNone},
    {"bits8", 1, Element::kNone},
    {"bits16", 2, Element::kNone},
    {"bits1x8", 1, Element::kNone},
    {"bits2x4", 1, Element::kNone},
    {"bits4x2", 1, Element::kNone},
    {"quint8", 1, Element::kNone},
    {"qint8", 1, Element::kNone},
    {"qint32", 4, Element::kNone},
    {"quint4x2", 1, Element::kNone},
    {"quint2x4", 1, Element::kNone},
};

const TorchDtype* find_dtype(const std::string& name) {
  for (const TorchDtype& dtype : kDtypes) {
    if (name == dtype.name) return &dtype;
  }
  return nullptr;
}

// The legacy storage classes a persistent id names, and their dtypes. UntypedStorage (bytes) is
// what dtypes newer than these are stored as, their dtype given to _rebuild_tensor_v3 instead.
constexpr std::pair<const char*, const char*> kStorageTypes[] = {
    {"FloatStorage", "float32"},
    {"BFloat16Storage", "bfloat16"},
    {"HalfStorage", "float16"},
    {"LongStorage", "int64"},
    {"IntStorage", "int32"},
    {"DoubleStorage", "float64"},
    {"ShortStorage", "int16"},
    {"CharStorage", "int8"},
    {"ByteStorage", "uint8"},
    {"BoolStorage", "bool"},
    {"UntypedStorage", "uint8"},
    {"ComplexFloatStorage", "complex64"},
    {"ComplexDoubleStorage", "complex128"},
    {"QUInt8Storage", "quint8"},
    {"QInt8Storage", "qint8"},
    {"QInt32Storage", "qint32"},
    {"QUInt4x2Storage", "quint4x2"},
    {"QUInt2x4Storage", "quint2x4"},
};

const TorchDtype* storage_dtype(const std::string& storage_type) {
  for (const auto& [name, dtype] : kStorageTypes) {
    if (storage_type == name) return find_dtype(dtype);
  }
  return nullptr;
}

bool is_native(Element e) {
  return e == Element::kF32 || e == Element::kBF16 || e == Element::kF16 || e == Element::kF8E4M3 ||
         e == Element::kI64 || e == Element::kI32;
}

// The core dtype a torch dtype's tensors become. Converted ones: f64 to f32, the small integers
// and bool to i32, uint32 to i64 (all exact but f64).
core::DType output_dtype(Element e) {
  switch (e) {
    case Element::kF32:
    case Element::kF64:
      return core::DType::F32;
    case Element::kBF16:
      return core::DType::BF16;
    case Element::kF16:
      return core::DType::F16;
    case Element::kF8E4M3:
      return core::DType::F8E4M3;
    case Element::kI64:
    case Element::kU32:
      return core::DType::I64;
    default:
      return core::DType::I32;
  }
}

// One element (at any alignment) into a tensor of output_dtype(e).
void convert_element(const char* src, Element e, size_t size, char* dst) {
  auto load = [src](auto value) {
    std::memcpy(&value, src, sizeof value);
    return value;
  };
  auto store = [dst](auto value) { std::memcpy(dst, &value, sizeof value); };
  switch (e) {
    case Element::kF64:
      store(static_cast<float>(load(double{})));
      return;
    case Element::kI16:
      store(int32_t{load(int16_t{})});
      return;
    case Element::kI8:
      store(int32_t{load(int8_t{})});
      return;
    case Element::kU8:
      store(int32_t{load(uint8_t{})});
      return;
    case Element::kBool:
      store(int32_t{load(uint8_t{}) != 0});
      return;
    case Element::kU16:
      store(int32_t{load(uint16_t{})});
      return;
    case Element::kU32:
      store(int64_t{load(uint32_t{})});
      return;
    default:
      std::memcpy(dst, src, size);
      return;
  }
}

// A storage named by a persistent id: the bytes of its data/<key> entry.
struct StorageRef {
  std::string entry;  // "archive/data/3", for messages
  std::string type;   // "FloatStorage"
  uint64_t bytes = 0;
  const char* data = nullptr;
  std::shared_ptr<core::Storage> view;  // made on first use, shared by every view of it
};

// A tensor as _rebuild_tensor_v2/v3 describe it; made into a core tensor once its key is known.
struct TensorSpec {
  std::shared_ptr<StorageRef> storage;
  const TorchDtype* dtype = nullptr;
  int64_t offset = 0;  // in elements of dtype
  std::vector<int64_t> size, stride;
};

std::shared_ptr<TensorSpec> as_tensor(const Value& v) {
  if (!v.is(Kind::kObject)) return nullptr;
  const auto* spec = std::any_cast<std::shared_ptr<TensorSpec>>(&v.object);
  return spec ? *spec : nullptr;
}

class TorchHandler : public pickle::Handler {
 public:
  TorchHandler(std::shared_ptr<const MappedFile> mapping, const ZipArchive& zip, std::string prefix)
      : mapping_(std::move(mapping)),
        zip_(zip),
        prefix_(std::move(prefix)),
        where_(mapping_->path() + ": " + prefix_ + "data.pkl") {}

  const std::string& where() const { return where_; }

  ValuePtr global(const std::string& module, const std::string& name) override {
    const bool known =
        (module == "collections" && name == "OrderedDict") ||
        (module == "torch._utils" &&
         (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor_v3" ||
          name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")) ||
        (module == "torch._tensor" && name == "_rebuild_from_type_v2") ||
        (module == "torch" && (name == "Tensor" || storage_dtype(name) || find_dtype(name))) ||
        (module == "torch.nn.parameter" && name == "Parameter");
    if (!known)
      fail("unsupported global '", module, ".", name, "' (only dicts of tensors are read)");
    return Value::make_global(module, name);
  }

  ValuePtr call(const ValuePtr& callable, const ValuePtr& args_tuple) override {
    if (!callable->is(Kind::kGlobal)) fail("pickle calls a ", pickle::describe(*callable));
    const std::string function = callable->text + "." + callable->name;
    const std::vector<ValuePtr>& args = args_tuple->items;
    auto expect_args = [&](size_t low, size_t high) {
      if (args.size() < low || args.size() > high) {
        fail(function, " called with ", args.size(), " arguments");
      }
    };
    if (function == "collections.OrderedDict") {
      expect_args(0, 0);
      return Value::make(Kind::kDict);
    }
    if (function == "torch._utils._rebuild_tensor_v2" ||
        function == "torch._utils._rebuild_tensor_v3") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, dtype (v3)]
      // [, metadata]); v3 views the storage's bytes as its dtype.
      const bool v3 = callable->name == "_rebuild_tensor_v3";
      expect_args(v3 ? 7 : 6, v3 ? 8 : 7);
      auto spec = std::make_shared<TensorSpec>();
      const auto* storage = args[0]->is(Kind::kObject)
                                ? std::any_cast<std::shared_ptr<StorageRef>>(&args[0]->object)
                                : nullptr;
      if (!storage) fail(function, " of a ", pickle::describe(*args[0]), ", not a storage");
      spec->storage = *storage;
      spec->dtype = storage_dtype(spec->storage->type);
      if (v3) {
        if (!args[6]->is(Kind::kGlobal) || args[6]->text != "torch" || !find_dtype(args[6]->name)) {
          fail(function, " with a ", pickle::describe(*args[6]), " for its dtype");
        }
        spec->dtype = find_dtype(args[6]->name);
      }
      spec->offset = as_int(*args[1], "storage offset");
      spec->size = as_ints(*args[2], "size");
      spec->stride = as_ints(*args[3], "stride");
      if (spec->size.size() != spec->stride.size()) {
        fail("tensor of ", spec->size.size(), " dimensions with ", spec->stride.size(), " strides");
      }
      return Value::make_object(spec);
    }
    if (function == "torch._utils._rebuild_parameter" ||
        function == "torch._utils._rebuild_parameter_with_state") {
      // (data, requires_grad, backward_hooks[, state]): the parameter is its tensor here.
      const size_t count = callable->name == "_rebuild_parameter" ? 3 : 4;
      expect_args(count, count);
      if (!as_tensor(*args[0])) fail(function, " of a ", pickle::describe(*args[0]));
      return args[0];
    }
    if (function == "torch._tensor._rebuild_from_type_v2") {
      // (rebuild function, tensor class, its arguments, Python attributes): a tensor that
      // carries attributes. Plain tensors and parameters only; the attributes are dropped.
      expect_args(4, 4);
      const Value& type = *args[1];
      const bool plain = type.is(Kind::kGlobal) &&
                         ((type.text == "torch" && type.name == "Tensor") ||
                          (type.text == "torch.nn.parameter" && type.name == "Parameter"));
      if (!plain || !args[2]->is(Kind::kTuple)) {
        fail(function, " of a ", pickle::describe(type), " (only tensors and parameters)");
      }
      ValuePtr tensor = call(args[0], args[2]);
      if (!as_tensor(*tensor)) fail(function, " did not rebuild a tensor");
      return tensor;
    }
    fail("pickle calls ", function, ", which does not build a tensor or a dict");
  }

  void build(const ValuePtr& object, const ValuePtr& state) override {
    // A state_dict's OrderedDict carries `_metadata` (module versions); a tensor may carry Python
    // attributes. Neither changes the tensors.
    if (object->is(Kind::kDict) || as_tensor(*object)) return;
    fail("pickle sets the state of a ", pickle::describe(*object));
  }

  ValuePtr persistent_load(const ValuePtr& pid) override {
    // ('storage', storage class, key, location, numel), numel counted in the class's elements
    // (bytes for UntypedStorage).
    const auto& f = pid->items;
    if (!pid->is(Kind::kTuple) || f.size() != 5 || !f[0]->is(Kind::kString) ||
        f[0]->text != "storage") {
      fail("unknown persistent id ", pickle::describe(*pid), " (a storage id expected)");
    }
    if (!f[1]->is(Kind::kGlobal) || f[1]->text != "torch" || !storage_dtype(f[1]->name)) {
      fail("storage id with a ", pickle::describe(*f[1]), " for its type");
    }
    if (!f[2]->is(Kind::kString) || !f[3]->is(Kind::kString)) {
      fail("storage id with key ", pickle::describe(*f[2]), " and location ",
           pickle::describe(*f[3]));
    }
    const std::string& type = f[1]->name;
    const std::string& key = f[2]->text;  // the location (cpu, cuda:0) does not matter here
    const uint64_t numel = static_cast<uint64_t>(as_int(*f[4], "storage size"));

    auto it = storages_.find(key);
    if (it != storages_.end()) {
      if (it->second->type != type) {
        fail("storage '", key, "' is used as both ", it->second->type, " and ", type);
      }
      return Value::make_object(it->second);
    }
    auto ref = std::make_shared<StorageRef>();
    ref->entry = prefix_ + "data/" + key;
    ref->type = type;
    const ZipEntry* entry = zip_.find(ref->entry);
    if (!entry) {
      fail("missing entry '", ref->entry, "' (the storage of ", numel, " ", type, " elements)");
    }
    ref->data = zip_.data(*entry);
    const size_t element_size = storage_dtype(type)->size;
    if (numel > entry->size / element_size) {
      fail("entry '", ref->entry, "' holds ", entry->size, " bytes, fewer than its ", numel, " ",
           type, " elements need");
    }
    ref->bytes = numel * element_size;
    storages_.emplace(key, ref);
    return Value::make_object(ref);
  }

  // The tensors of the unpickled object (see the header for what is unwrapped).
  std::map<std::string, core::Tensor> state_dict(const Value& root) {
    if (!root.is(Kind::kDict)) fail("holds a ", pickle::describe(root), ", not a dict of tensors");
    const Value* dict = &root;
    std::string inside;
    bool all_tensors = true;
    for (const auto& entry : root.entries) all_tensors = all_tensors && as_tensor(*entry.second);
    if (!all_tensors) {
      for (const char* name : {"state_dict", "model"}) {
        ValuePtr inner = root.find(name);
        if (inner && inner->is(Kind::kDict)) {
          dict = inner.get();
          inside = std::string(" in '") + name + "'";
          break;
        }
      }
    }
    std::map<std::string, core::Tensor> tensors;
    for (const auto& [key, value] : dict->entries) {
      if (!key->is(Kind::kString)) fail("state dict key ", pickle::describe(*key), " is no string");
      const auto spec = as_tensor(*value);
      if (!spec) {
        fail("'", key->text, "'", inside, " is not a tensor but ", pickle::describe(*value),
             inside.empty() ? " (and there is no 'state_dict' or 'model' dict)" : "");
      }
      tensors.insert_or_assign(key->text, materialize(key->text, *spec));
    }
    return tensors;
  }

 private:
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw make_error(where_, ": ", args...);
  }

  int64_t as_int(const Value& v, const char* what) const {
    if (!v.is(Kind::kInt) || v.integer < 0) fail("tensor ", what, " is a ", pickle::describe(v));
    return v.integer;
  }
  std::vector<int64_t> as_ints(const Value& v, const char* what) const {
    if (!v.is(Kind::kTuple)) fail("tensor ", what, " is a ", pickle::describe(v), ", not a tuple");
    std::vector<int64_t> out;
    for (const ValuePtr& item : v.items) out.push_back(as_int(*item, what));
    return out;
  }

  core::Tensor materialize(const std::string& key, const TensorSpec& spec) const;

  std::shared_ptr<const MappedFile> mapping_;
  const ZipArchive& zip_;
  std::string prefix_;  // "archive/"
  std::string where_;
  std::unordered_map<std::string, std::shared_ptr<StorageRef>> storages_;
};

core::Tensor TorchHandler::materialize(const std::string& key, const TensorSpec& spec) const {
  StorageRef& storage = *spec.storage;
  const TorchDtype& torch_dtype = *spec.dtype;
  if (torch_dtype.element == Element::kNone) {
    fail("tensor '", key, "' has dtype ", torch_dtype.name, " (", storage.type,
         "), which wanbatch does not read");
  }
  const core::Shape shape(spec.size.begin(), spec.size.end());
  const core::DType dtype = output_dtype(torch_dtype.element);
  const size_t element_size = torch_dtype.size;
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > INT64_MAX / d) fail("tensor '", key, "' has an absurd size");
    numel *= d;
  }
  if (numel == 0) return core::Tensor::empty(shape, dtype);

  // The last element it reaches must lie in the storage (PyTorch strides are never negative).
  const uint64_t capacity = storage.bytes / element_size;
  uint64_t last = static_cast<uint64_t>(spec.offset);
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t steps = static_cast<uint64_t>(shape[i] - 1);
    const uint64_t stride = static_cast<uint64_t>(spec.stride[i]);
    if (stride != 0 && steps > (UINT64_MAX - last) / stride)
      last = UINT64_MAX;
    else
      last += steps * stride;
  }
  if (last >= capacity) {
    fail("tensor '", key, "' (offset ", spec.offset, ", size ", core::shape_str(shape), ", stride ",
         core::shape_str(spec.stride), ") reaches past its storage '", storage.entry, "' of ",
         capacity, " ", torch_dtype.name, " elements");
  }

  bool contiguous = true;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;  // any stride will do for a dimension of one
    if (spec.stride[i] != expected) {
      contiguous = false;
      break;
    }
    expected *= shape[i];
  }
  const char* first = storage.data + spec.offset * element_size;
  const bool aligned = reinterpret_cast<uintptr_t>(first) % element_size == 0;
  if (contiguous && aligned && is_native(torch_dtype.element)) {
    if (!storage.view) {
      storage.view = core::Storage::borrow(const_cast<char*>(storage.data), storage.bytes,
                                           core::Device::cpu(), mapping_);
    }
    return core::Tensor::from_storage(storage.view, spec.offset * element_size, shape, dtype);
  }

  // A copy, row by row of the last dimension, an odometer over the others.
  core::Tensor out = core::Tensor::empty(shape, dtype);
  char* dst = static_cast<char*>(out.raw());
  const size_t out_size = core::dtype_size(dtype);
  const int n = static_cast<int>(shape.size());
  const int64_t inner = n ? shape[n - 1] : 1;
  const int64_t inner_stride = n ? spec.stride[n - 1] : 1;
  const bool plain_rows = inner_stride == 1 && is_native(torch_dtype.element);
  std::vector<int64_t> index(n, 0);
  int64_t src = spec.offset;
  for (int64_t row = 0, rows = numel / inner; row < rows; ++row) {
    if (plain_rows) {
      std::memcpy(dst, storage.data + src * element_size, inner * element_size);
    } else {
      for (int64_t j = 0; j < inner; ++j) {
        convert_element(storage.data + (src + j * inner_stride) * element_size, torch_dtype.element,
                        element_size, dst + j * out_size);
      }
    }
    dst += inner * out_size;
    for (int d = n - 2; d >= 0; --d) {
      src += spec.stride[d];
      if (++index[d] < shape[d]) break;
      src -= spec.stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

std::map<std::string, core::Tensor> read_pytorch_state_dict(const std::string& path) {
  auto mapping = std::make_shared<const MappedFile>(path);
  const ZipArchive zip(*mapping);
  if (zip.entries().empty()) throw make_error(path, ": empty ZIP archive, not a torch.save file");

  // PyTorch's reader takes the folder of the first entry as the archive's name.
  const std::string& first = zip.entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) {
    throw make_error(path, ": not a torch.save archive (its first entry '", first,
                     "' is not inside a folder)");
  }
  const std::string prefix = first.substr(0, slash + 1);
  if (zip.find(prefix + "constants.pkl")) {
    throw make_error(path, ": a TorchScript archive (torch.jit.save), not a torch.save state dict");
  }
  if (const ZipEntry* order = zip.find(prefix + "byteorder")) {
    const std::string text(zip.data(*order), std::min<uint64_t>(order->size, 16));
    if (text != "little") {
      throw make_error(path, ": byte order '", text, "' is not read (only little-endian files)");
    }
  }
  const ZipEntry* pickle_entry = zip.find(prefix + "data.pkl");
  if (!pickle_entry) {
    throw make_error(path, ": no '", prefix, "data.pkl' in the archive (not a torch.save file?)");
  }
  TorchHandler handler(mapping, zip, prefix);
  const ValuePtr root =
      pickle::unpickle(zip.data(*pickle_entry), pickle_entry->size, handler, handler.where());
  return handler.state_dict(*root);
}

}  // namespace wanbatch::io
