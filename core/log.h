// Logging for the libraries: WB_LOG(info) << "...";. Lines go to a sink function: by default a
// plain stderr writer, and in the wanbatch executable Boost.Log (app/logging.h), which adds the
// time, the MPI rank and the level filter. Keeping Boost out of the libraries lets them (and the
// CUDA tests) build on GPU hosts that have Boost's headers but not its compiled libraries.
#pragma once

#include <sstream>
#include <string>

namespace wanbatch::log {

enum class Level { trace, debug, info, warning, error, fatal };

using Sink = void (*)(Level level, const std::string& message);
void set_sink(Sink sink);
// Lines below this level are not even formatted.
void set_threshold(Level level);
bool enabled(Level level);
void write(Level level, const std::string& message);
const char* level_name(Level level);

// Collects one line and hands it to the sink when it goes out of scope.
class Line {
 public:
  explicit Line(Level level) : level_(level) {}
  ~Line() { write(level_, stream_.str()); }
  std::ostringstream& stream() { return stream_; }

 private:
  Level level_;
  std::ostringstream stream_;
};

}  // namespace wanbatch::log

#define WB_LOG(level)                                                    \
  if (!::wanbatch::log::enabled(::wanbatch::log::Level::level)) {        \
  } else                                                                 \
    ::wanbatch::log::Line(::wanbatch::log::Level::level).stream()
