#include "app/logging.h"

#include <boost/core/null_deleter.hpp>
#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sinks/text_ostream_backend.hpp>
#include <boost/log/support/date_time.hpp>
#include <boost/log/trivial.hpp>
#include <boost/log/utility/setup/common_attributes.hpp>
#include <iostream>

#include "core/error.h"
#include "core/log.h"

namespace wanbatch::app {
namespace logging = boost::log;
namespace expr = boost::log::expressions;

namespace {

static_assert(static_cast<int>(log::Level::fatal) == logging::trivial::fatal &&
                  static_cast<int>(log::Level::trace) == logging::trivial::trace,
              "core/log.h levels mirror Boost.Log's trivial severities");

// The libraries' log lines (core/log.h) go into Boost.Log with the matching severity.
void boost_sink(log::Level level, const std::string& message) {
  BOOST_LOG_STREAM_WITH_PARAMS(
      logging::trivial::logger::get(),
      (logging::keywords::severity = static_cast<logging::trivial::severity_level>(level)))
      << message;
}

logging::trivial::severity_level parse_level(const std::string& name) {
  logging::trivial::severity_level level;
  if (!logging::trivial::from_string(name.c_str(), name.size(), level)) {
    throw make_error("unknown log level '", name,
                     "' (expected trace, debug, info, warning, error or fatal)");
  }
  return level;
}
}  // namespace

void init_logging(const LogSettings& settings) {
  const auto threshold = parse_level(settings.level);
  auto core = logging::core::get();
  core->remove_all_sinks();
  logging::add_common_attributes();

  using Backend = logging::sinks::text_ostream_backend;
  auto backend = boost::make_shared<Backend>();
  backend->add_stream(boost::shared_ptr<std::ostream>(&std::clog, boost::null_deleter()));
  backend->auto_flush(true);
  auto sink = boost::make_shared<logging::sinks::synchronous_sink<Backend>>(backend);

  const std::string rank_tag =
      settings.rank >= 0 ? "[rank " + std::to_string(settings.rank) + "] " : "";
  sink->set_formatter(expr::stream << expr::format_date_time<boost::posix_time::ptime>(
                                          "TimeStamp", "%Y-%m-%d %H:%M:%S.%f")
                                   << " " << rank_tag << logging::trivial::severity << ": "
                                   << expr::smessage);
  // Rank 0 (or a run outside MPI) logs at the chosen level; other ranks only their warnings and
  // errors unless every rank is asked for, so N ranks don't print N copies of the progress.
  const bool quiet_rank = settings.rank > 0 && !settings.all_ranks;
  const auto effective = quiet_rank ? std::max(threshold, logging::trivial::warning) : threshold;
  sink->set_filter(logging::trivial::severity >= effective);
  core->add_sink(sink);
  log::set_threshold(static_cast<log::Level>(effective));
  log::set_sink(boost_sink);
}

}  // namespace wanbatch::app
