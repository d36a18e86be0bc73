#include "core/log.h"

#include <atomic>
#include <iostream>

namespace wanbatch::log {
namespace {

void stderr_sink(Level level, const std::string& message) {
  std::cerr << level_name(level) << ": " << message << std::endl;
}

std::atomic<Sink> current_sink{stderr_sink};
std::atomic<Level> threshold{Level::info};

}  // namespace

void set_sink(Sink sink) { current_sink = sink ? sink : stderr_sink; }
void set_threshold(Level level) { threshold = level; }
bool enabled(Level level) { return level >= threshold.load(); }
void write(Level level, const std::string& message) { current_sink.load()(level, message); }

const char* level_name(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
    case Level::fatal: return "fatal";
  }
  return "?";
}

}  // namespace wanbatch::log
