// wanbatch: the command-line entry point. Finds the subcommand, runs it, and turns any error into
// one clear line on stderr and a non-zero exit status.
#include <cstring>
#include <iostream>
#include <map>

#include "app/commands.h"
#include "core/error.h"
#include "version.h"

namespace wanbatch::app {
namespace {

struct CommandEntry {
  const char* summary;
  int (*run)(const Invocation&);
};

const std::map<std::string, CommandEntry>& commands() {
  static const std::map<std::string, CommandEntry> table = {
      {"bench",
       {"time one DiT forward of a real-size variant on the GPU (random weights), with its "
        "breakdown and the GEMM and attention ceilings",
        bench_command}},
      {"decode", {"saved latents (ITEM.h5) to a video with a Wan VAE", decode_command}},
      {"inspect",
       {"what a weight file or model folder holds: tensors, dtypes, shapes, bytes, "
        "the detected Wan variant",
        inspect_command}},
      {"make-test-model",
       {"write random weights in the official layout (tiny presets for tests "
        "and demos, real sizes for benchmarks)",
        make_test_model_command}},
      {"run",
       {"the batch job: a manifest of prompts to videos and latents over the MPI ranks "
        "(data-parallel groups, Ulysses, CFG-parallel), resumable",
        run_command}},
      {"tool",
       {"single stages on HDF5 inputs and outputs, to check against other "
        "implementations (wanbatch tool --help)",
        tool_command}},
  };
  return table;
}

void print_version() {
  std::cout << "wanbatch " << WANBATCH_VERSION;
  if (std::strlen(WANBATCH_GIT_REVISION) > 0) std::cout << " (" << WANBATCH_GIT_REVISION << ")";
  std::cout << "\nCUDA backend: " << (WANBATCH_CUDA_BUILT ? "built" : "not built")
            << "\nvideo output (FFmpeg): " << (WANBATCH_VIDEO_BUILT ? "built" : "not built")
            << "\n";
}

void print_help() {
  std::cout << "wanbatch: batch video generation with the Wan2.1 / Wan2.2 models\n\n"
               "Usage: wanbatch COMMAND [options]    (wanbatch COMMAND --help for its options)\n"
               "       wanbatch --version\n\nCommands:\n";
  for (const auto& [name, entry] : commands()) {
    std::cout << "  " << name << std::string(18 - std::min<size_t>(name.size(), 17), ' ')
              << entry.summary << "\n";
  }
  std::cout << "\n" << global_options() << "\n";
}

// Options of the global set that take a value, so their value is not mistaken for the command.
bool takes_value(const std::string& arg) { return arg == "--log-level" || arg == "--config"; }

int run(int argc, char** argv) {
  Invocation call;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (call.command.empty() && arg.rfind("-", 0) != 0) {
      call.command = arg;
      continue;
    }
    if (call.command.empty() && arg == "--version") {
      print_version();
      return 0;
    }
    call.args.push_back(arg);
    if (takes_value(arg) && i + 1 < args.size()) call.args.push_back(args[++i]);
  }
  if (call.command.empty()) {
    print_help();
    const bool asked = !call.args.empty() && (call.args[0] == "--help" || call.args[0] == "-h");
    return asked ? 0 : 2;
  }
  auto it = commands().find(call.command);
  if (it == commands().end()) {
    throw make_error("unknown command '", call.command, "' (see wanbatch --help)");
  }
  return it->second.run(call);
}

}  // namespace
}  // namespace wanbatch::app

int main(int argc, char** argv) {
  try {
    return wanbatch::app::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "wanbatch: error: " << e.what() << std::endl;
    return 1;
  }
}
