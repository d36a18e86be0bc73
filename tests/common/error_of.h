// error_of(f): the message of the wanbatch::Error that f() throws, or "" when it throws none, for
// tests that expect one exact message (e.g. the same one on every rank).
#pragma once

#include <string>

#include "core/error.h"

namespace wanbatch::testing {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace wanbatch::testing
