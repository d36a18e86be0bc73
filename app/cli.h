// Command-line plumbing shared by the subcommands: each command declares its options with Boost
// Program_options; parse_command adds the global options, reads the INI file given by --config
// (flags on the command line win), prints --help, and starts logging.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace wanbatch::app {

namespace po = boost::program_options;

// What main hands to a command: its name and every argument except the command word.
struct Invocation {
  std::string command;
  std::vector<std::string> args;
};

struct CommandSpec {
  std::string name;
  std::string usage;    // "wanbatch inspect PATH [options]"
  std::string summary;  // one line for the command list
  po::options_description options{"Options", 100};
  po::positional_options_description positional;
};

// Parses an invocation against `spec` plus the global options. Returns nullopt when --help was
// printed (the command should exit 0). Throws Error with a one-line message on bad arguments.
std::optional<po::variables_map> parse_command(const CommandSpec& spec, const Invocation& call);

// The global options every command accepts (--log-level, --log-all-ranks, --config, --help).
po::options_description global_options();

}  // namespace wanbatch::app
