#include "io/av_support.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
}

#include <array>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "core/log.h"

namespace wanbatch::io::av {
namespace {

// libav logs through one process-wide callback; ours keeps its lines in the wanbatch log (rank
// tag, level filter). Its info lines (x264's statistics, say) become debug lines.
void forward_line(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_VERBOSE) return;
  log::Level ours = log::Level::debug;
  if (level <= AV_LOG_ERROR) {
    ours = log::Level::error;
  } else if (level <= AV_LOG_WARNING) {
    ours = log::Level::warning;
  }
  if (!log::enabled(ours)) return;
  std::array<char, 1024> line{};
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, args, line.data(), static_cast<int>(line.size()),
                      &print_prefix);
  std::string text = line.data();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty()) log::write(ours, "libav: " + text);
}

}  // namespace

std::string error_text(int code) {
  std::array<char, AV_ERROR_MAX_STRING_SIZE> text{};
  if (av_strerror(code, text.data(), text.size()) < 0) {
    std::snprintf(text.data(), text.size(), "libav error %d", code);
  }
  return text.data();
}

void throw_error(int code, const char* call, const char* verb, const std::string& target,
                 const char* file, int line) {
  const std::string function(call, std::strcspn(call, "("));
  throw make_error("cannot ", verb, " ", target, ": ", function, " failed: ", error_text(code),
                   " [", std::filesystem::path(file).filename().string(), ":", line, "]");
}

void forward_log() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(forward_line); });
}

}  // namespace wanbatch::io::av
