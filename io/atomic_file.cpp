#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace wanbatch::io {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  const std::filesystem::path p(path_);
  // Appended piecewise: GCC 12 gives a false -Wrestrict on chained operator+ here (bug 105329).
  std::string name = ".";
  name += p.filename().string();
  name += ".tmp.";
  name += std::to_string(::getpid());
  temp_path_ = (p.parent_path() / name).string();
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::commit() {
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw make_error("cannot rename ", temp_path_, " to ", path_, ": ", std::strerror(errno));
  }
  committed_ = true;
}

}  // namespace wanbatch::io
