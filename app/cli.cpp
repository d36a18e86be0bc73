#include "app/cli.h"

#include <fstream>
#include <iostream>

#include "app/logging.h"
#include "core/error.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::app {

po::options_description global_options() {
  po::options_description global("Global options", 100);
  // clang-format off
  global.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(),
       "read options from this INI file (key = value, keys are long option names; command-line "
       "flags override it)")
      ("log-level", po::value<std::string>()->default_value("info"),
       "trace, debug, info, warning, error or fatal")
      ("log-all-ranks", po::bool_switch(), "every MPI rank logs at --log-level, not only rank 0");
  // clang-format on
  return global;
}

std::optional<po::variables_map> parse_command(const CommandSpec& spec, const Invocation& call) {
  po::options_description all(100);
  all.add(spec.options).add(global_options());
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(call.args).options(all).positional(spec.positional).run(),
              vm);
    if (vm.count("help")) {
      std::cout << "Usage: " << spec.usage << "\n\n" << spec.summary << "\n\n" << all << "\n";
      return std::nullopt;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw make_error("cannot open config file ", path);
      try {
        po::store(po::parse_config_file(in, all), vm);
      } catch (const po::error& e) {
        throw make_error("config file ", path, ": ", e.what());
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw make_error("wanbatch ", spec.name, ": ", e.what(), " (see wanbatch ", spec.name,
                     " --help)");
  }
  init_logging({vm["log-level"].as<std::string>(), vm["log-all-ranks"].as<bool>(),
                parallel::environment_rank()});
  return vm;
}

}  // namespace wanbatch::app
