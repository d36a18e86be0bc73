// A set of weights that may span several safetensors files: one file, a sharded checkpoint through
// its *.safetensors.index.json, or a folder (its one index JSON, else all its safetensors files).
// Callers see one flat set of tensor names.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace wanbatch::io {

class Checkpoint {
 public:
  // Throws naming the path and what is wrong (missing shard, tensor absent from its shard, a name
  // in two files, malformed index JSON).
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return owner_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  core::Tensor tensor(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  std::vector<std::string> files() const;
  uint64_t total_bytes() const;
  // 16 hex digits identifying these weights, for output files: a 64-bit FNV-1a hash over every
  // tensor's name, dtype, shape and the first and last 4 KiB of its data. Reads about 8 KiB a
  // tensor, so it takes milliseconds on a 28 GB checkpoint; not a cryptographic digest, and the
  // same whichever layout (shards, folder) holds the tensors.
  std::string fingerprint() const;

 private:
  void add_file(const std::string& path);
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name → index into files_
};

}  // namespace wanbatch::io
