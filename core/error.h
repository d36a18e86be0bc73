// The project's error type and the check helpers every layer uses to report what failed and where.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace wanbatch {

// Thrown for every failure the user can cause or must see (bad input, missing files, library
// errors). `main` prints what() as one line and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

// Builds an Error message from streamable pieces: throw make_error("tensor ", name, ": ...").
template <typename... Args>
Error make_error(const Args&... args) {
  return Error(detail::concat(args...));
}

}  // namespace wanbatch

// Internal invariant or argument check; the message should name what was wrong.
#define WB_CHECK(cond, ...)                                                   \
  do {                                                                        \
    if (!(cond)) throw ::wanbatch::make_error(__VA_ARGS__);                   \
  } while (0)
