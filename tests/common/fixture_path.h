// Where the reference fixtures (tests/reference/*.py, generated at build time) are.
#pragma once

#include <string>

namespace wanbatch::testing {

inline std::string fixture_path(const std::string& name) {
  return std::string(WANBATCH_FIXTURE_DIR) + "/" + name;
}

}  // namespace wanbatch::testing
