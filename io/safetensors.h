// safetensors files (https://huggingface.co/docs/safetensors): reading through mmap with tensors as
// zero-copy views, reading one tensor's byte range alone (for sharded loading), and writing. The
// header is validated completely at open; every error names the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::io {

class MappedFile;

struct TensorInfo {
  core::DType dtype = core::DType::F32;
  core::Shape shape;
  uint64_t file_offset = 0;  // absolute byte offset of the data in the file
  uint64_t bytes = 0;
  std::string file;          // the file holding it
};

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return infos_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming file and tensor
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t total_bytes() const;

  // A CPU tensor viewing the mapped file; it keeps the mapping alive on its own.
  core::Tensor tensor(const std::string& name) const;
  // Reads bytes [begin, end) of the tensor's data into dst with pread, without touching the rest.
  void read_range(const std::string& name, uint64_t begin, uint64_t end, void* dst) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::shared_ptr<MappedFile> mapping_;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Writes host or device tensors in the given order (header padded to 8 bytes), to a temporary
// name first, renamed onto `path` when complete.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype spelling ("BF16", "F8_E4M3", ...) for a dtype, and back (throws).
std::string safetensors_dtype_name(core::DType dtype);

}  // namespace wanbatch::io
