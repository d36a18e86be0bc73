// Logging for every layer: WB_LOG(info) << "..."; through Boost.Log. The application sets up the
// sink, the format (timestamp, rank, level) and the level filter (app/logging.h).
#pragma once

#include <boost/log/trivial.hpp>

#define WB_LOG(severity) BOOST_LOG_TRIVIAL(severity)
