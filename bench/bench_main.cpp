// wanbatch-bench: `wanbatch bench` for hosts whose Boost has headers but not the Program_options
// and Log libraries the wanbatch executable needs (as on the GPU test machine). Same options, same
// output; arguments are `--key value` pairs and the switches `--cpu`, `--shard-weights`,
// `--offload-blocks`, `--guided` and `--cfg-parallel`.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <string>

#include "bench/dit_benchmark.h"
#include "core/error.h"

namespace {

constexpr const char* kUsage =
    "usage: wanbatch-bench --variant V [--size WxH] [--frames F] [--iterations N] [--warmup N] "
    "[--seed S] [--ulysses N] [--shard-weights] [--offload-blocks] [--weights-dir DIR] [--guided] "
    "[--cfg-parallel] [--cpu]\n";

int64_t number(const std::map<std::string, std::string>& args, const std::string& key,
               int64_t fallback) {
  const auto it = args.find(key);
  if (it == args.end()) return fallback;
  size_t used = 0;
  const int64_t value = std::stoll(it->second, &used);
  WB_CHECK(used == it->second.size(), "--", key, " '", it->second, "' is not a whole number");
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wanbatch;
  try {
    std::map<std::string, std::string> args;
    bool cpu = false, shard = false, offload = false, guided = false, cfg_parallel = false;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (arg == "--cpu") {
        cpu = true;
        continue;
      }
      if (arg == "--shard-weights") {
        shard = true;
        continue;
      }
      if (arg == "--offload-blocks") {
        offload = true;
        continue;
      }
      if (arg == "--guided") {
        guided = true;
        continue;
      }
      if (arg == "--cfg-parallel") {
        cfg_parallel = true;
        continue;
      }
      WB_CHECK(arg.rfind("--", 0) == 0 && i + 1 < argc, "unexpected argument '", arg, "'\n",
               kUsage);
      args[arg.substr(2)] = argv[++i];
    }
    for (const auto& [key, value] : args) {
      WB_CHECK(key == "variant" || key == "size" || key == "frames" || key == "iterations" ||
                   key == "warmup" || key == "seed" || key == "ulysses" || key == "weights-dir",
               "unknown option --", key, "\n", kUsage);
    }
    WB_CHECK(args.count("variant"), "--variant is required\n", kUsage);
    bench::DitBenchOptions options;
    options.variant = args["variant"];
    const std::string size = args.count("size") ? args["size"] : "832x480";
    const size_t x = size.find('x');
    WB_CHECK(x != std::string::npos, "--size '", size, "': expected WIDTHxHEIGHT");
    options.width = std::stoll(size.substr(0, x));
    options.height = std::stoll(size.substr(x + 1));
    options.frames = number(args, "frames", 81);
    options.iterations = static_cast<int>(number(args, "iterations", 5));
    options.warmup = static_cast<int>(number(args, "warmup", 2));
    options.seed = static_cast<uint64_t>(number(args, "seed", 0));
    options.shard_weights = shard;
    options.offload_blocks = offload;
    options.guided = guided;
    options.cfg_parallel = cfg_parallel;
    if (args.count("weights-dir")) options.weights_dir = args["weights-dir"];
    return bench::run_dit_benchmark_command(options, static_cast<int>(number(args, "ulysses", 1)),
                                            cpu);
  } catch (const std::exception& e) {
    std::cerr << "wanbatch-bench: error: " << e.what() << "\n";
    return 2;
  }
}
