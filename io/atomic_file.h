// Outputs written under a temporary name in the destination folder and renamed onto the final
// name when complete, so a reader never sees a half-written file and a crash loses nothing done.
#pragma once

#include <string>

namespace wanbatch::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  // Where to write: "<dir>/.<name>.tmp.<pid>", on the same file system as path().
  const std::string& temp_path() const { return temp_path_; }
  // Renames the temporary file onto path(); throws naming both on failure.
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  bool committed_ = false;
};

}  // namespace wanbatch::io
