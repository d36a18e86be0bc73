// A whole file mapped read-only into memory; tensors read from it are views into the mapping.
#pragma once

#include <cstddef>
#include <string>

namespace wanbatch::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wanbatch::io
