#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace wanbatch::io {
namespace {

using nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the format's own limit is 100 MB

const std::pair<const char*, core::DType> kDtypes[] = {
    {"F32", core::DType::F32}, {"BF16", core::DType::BF16}, {"F16", core::DType::F16},
    {"F8_E4M3", core::DType::F8E4M3}, {"I32", core::DType::I32}, {"I64", core::DType::I64}};

core::DType parse_dtype(const std::string& text, const std::string& file, const std::string& name) {
  for (const auto& [spelling, dtype] : kDtypes) {
    if (text == spelling) return dtype;
  }
  throw make_error(file, ": tensor '", name, "' has unsupported dtype '", text,
                   "' (supported: F32, BF16, F16, F8_E4M3, I32, I64)");
}

uint64_t header_size(const MappedFile& file) {
  WB_CHECK(file.size() >= 8, file.path(), ": not a safetensors file (", file.size(),
           " bytes, shorter than the 8-byte header size)");
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | static_cast<unsigned char>(file.data()[i]);
  WB_CHECK(size <= kMaxHeaderBytes && size <= file.size() - 8, file.path(),
           ": not a safetensors file or truncated (header of ", size, " bytes in a file of ",
           file.size(), ")");
  return size;
}

}  // namespace

std::string safetensors_dtype_name(core::DType dtype) {
  for (const auto& [spelling, d] : kDtypes) {
    if (d == dtype) return spelling;
  }
  throw Error("no safetensors name for this dtype");
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::make_shared<MappedFile>(path);
  const MappedFile& map = *file->mapping_;
  const uint64_t hsize = header_size(map);
  const uint64_t data_start = 8 + hsize;
  const uint64_t data_size = map.size() - data_start;

  json header;
  try {
    header = json::parse(map.data() + 8, map.data() + data_start);
  } catch (const json::exception& e) {
    throw make_error(path, ": safetensors header is not valid JSON (", e.what(), ")");
  }
  WB_CHECK(header.is_object(), path, ": safetensors header is not a JSON object");

  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) in the data section
  std::vector<const std::string*> range_names;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      WB_CHECK(entry.is_object(), path, ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        WB_CHECK(value.is_string(), path, ": __metadata__ value of '", key, "' is not a string");
        file->metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    auto where = [&]() { return path + ": tensor '" + name + "'"; };
    WB_CHECK(entry.is_object(), where(), " is not a JSON object");
    WB_CHECK(entry.contains("dtype") && entry["dtype"].is_string(), where(), " has no dtype");
    WB_CHECK(entry.contains("shape") && entry["shape"].is_array(), where(), " has no shape");
    WB_CHECK(entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                 entry["data_offsets"].size() == 2,
             where(), " has no data_offsets pair");
    TensorInfo info;
    info.file = path;
    info.dtype = parse_dtype(entry["dtype"].get<std::string>(), path, name);
    uint64_t numel = 1;
    for (const json& d : entry["shape"]) {
      WB_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
               where(), " has an invalid shape ", entry["shape"].dump());
      info.shape.push_back(d.get<int64_t>());
      WB_CHECK(d.get<uint64_t>() == 0 || numel <= UINT64_MAX / d.get<uint64_t>(), where(),
               " has an absurd shape ", entry["shape"].dump());
      numel *= d.get<uint64_t>();
    }
    const json& offsets = entry["data_offsets"];
    WB_CHECK(offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(), where(),
             " has invalid data_offsets ", offsets.dump());
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    WB_CHECK(begin <= end, where(), " has data_offsets ", offsets.dump(), " with begin > end");
    WB_CHECK(end <= data_size, where(), " has data_offsets ", offsets.dump(),
             " past the end of the data (", data_size, " bytes; is the file truncated?)");
    WB_CHECK(numel <= UINT64_MAX / core::dtype_size(info.dtype) &&
                 end - begin == numel * core::dtype_size(info.dtype),
             where(), ": ", end - begin, " bytes do not hold shape ", entry["shape"].dump(), " of ",
             entry["dtype"].get<std::string>());
    info.file_offset = data_start + begin;
    info.bytes = end - begin;
    auto [it, inserted] = file->infos_.emplace(name, std::move(info));
    ranges.emplace_back(begin, end);
    range_names.push_back(&it->first);
  }
  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& prev = ranges[order[i - 1]];
    const auto& cur = ranges[order[i]];
    if (cur.first < prev.second && cur.first != cur.second && prev.first != prev.second) {
      throw make_error(path, ": tensors '", *range_names[order[i - 1]], "' and '",
                       *range_names[order[i]], "' overlap in the file");
    }
  }
  return file;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  for (const auto& [name, info] : infos_) names.push_back(name);
  return names;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw make_error(path_, ": no tensor '", name, "'");
  return it->second;
}

uint64_t SafetensorsFile::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, info] : infos_) total += info.bytes;
  return total;
}

core::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& i = info(name);
  auto storage = core::Storage::borrow(const_cast<char*>(mapping_->data()) + i.file_offset,
                                       i.bytes, core::Device::cpu(), mapping_);
  return core::Tensor::from_storage(std::move(storage), 0, i.shape, i.dtype);
}

void SafetensorsFile::read_range(const std::string& name, uint64_t begin, uint64_t end,
                                 void* dst) const {
  const TensorInfo& i = info(name);
  WB_CHECK(begin <= end && end <= i.bytes, path_, ": byte range [", begin, ", ", end,
           ") outside tensor '", name, "' of ", i.bytes, " bytes");
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw make_error("cannot open ", path_, ": ", std::strerror(errno));
  uint64_t done = 0;
  while (done < end - begin) {
    const ssize_t n = ::pread(fd, static_cast<char*>(dst) + done, end - begin - done,
                              static_cast<off_t>(i.file_offset + begin + done));
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw make_error(path_, ": reading tensor '", name, "' failed: ",
                       n == 0 ? "unexpected end of file" : std::strerror(err));
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    WB_CHECK(name != "__metadata__" && !header.contains(name), path, ": tensor name '", name,
             "' is reserved or repeated");
    header[name] = {{"dtype", safetensors_dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + tensor.nbytes()}}};
    offset += tensor.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned

  AtomicFile file(path);
  std::ofstream out(file.temp_path(), std::ios::binary);
  if (!out) throw make_error("cannot create ", file.temp_path(), ": ", std::strerror(errno));
  char size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  out.write(size_bytes, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, tensor] : tensors) {
    const core::Tensor host = tensor.device().is_cpu() ? tensor : tensor.to(core::Device::cpu());
    out.write(static_cast<const char*>(host.numel() ? host.raw() : nullptr),
              static_cast<std::streamsize>(host.nbytes()));
  }
  out.close();
  if (!out) throw make_error("writing ", file.temp_path(), " failed (disk full?)");
  file.commit();
}

}  // namespace wanbatch::io
