// wanbatch bench: the DiT forward benchmark (bench/dit_benchmark.h) on this machine's GPU, or on
// the CPU with --cpu (tiny variants, to check the machinery). Under mpirun with --ulysses N the
// ranks run one sequence-parallel forward, one GPU each (NCCL). --guided times a guided evaluation
// (the prompt and the negative prompt), --cfg-parallel on 2 × --ulysses ranks.
#include "app/commands.h"
#include "app/tool_inputs.h"
#include "bench/dit_benchmark.h"
#include "core/error.h"

namespace wanbatch::app {

int bench_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = "bench";
  spec.usage =
      "wanbatch bench --variant V --size WxH --frames F [--ulysses N] [--guided | --cfg-parallel] "
      "[options]";
  spec.summary =
      "Times one DiT forward of a released variant at its real size with random bf16 weights: "
      "the median of --iterations runs after --warmup, TFLOP/s per GPU, a breakdown (GEMM, "
      "attention, communication, other) from one profiled run, peak device memory, and the "
      "GEMM and attention ceilings measured at the same shapes. --guided times one guided "
      "evaluation instead (two forwards, as the sampler runs them). The last line is key=value.";
  // clang-format off
  spec.options.add_options()
      ("variant", po::value<std::string>()->required(),
       "wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.2-t2v-a14b (one expert), wan2.2-ti2v-5b, ... or a "
       "tiny preset")
      ("size", po::value<std::string>()->default_value("832x480"), "WIDTHxHEIGHT")
      ("frames", po::value<int64_t>()->default_value(81), "video frames (4k+1)")
      ("iterations", po::value<int>()->default_value(5), "timed forwards")
      ("warmup", po::value<int>()->default_value(2), "forwards before timing")
      ("seed", po::value<uint64_t>()->default_value(0), "random weights and inputs")
      ("ulysses", po::value<int>()->default_value(1),
       "Ulysses sequence parallelism over N ranks (start under mpirun -np N)")
      ("cpu", po::bool_switch(), "run on the CPU (fp32) instead of the GPU")
      ("shard-weights", po::bool_switch(),
       "split the blocks' weights over the --ulysses ranks, gathering each block before it runs")
      ("offload-blocks", po::bool_switch(),
       "keep the blocks' weights in pinned host memory, copying each in a block ahead")
      ("weights-dir", po::value<std::string>(),
       "load the model from this folder through the checkpoint loader and time the load (random "
       "weights are written there first when it has none)")
      ("guided", po::bool_switch(),
       "time one guided evaluation (the prompt and the negative prompt as one batch of two) "
       "instead of one forward")
      ("cfg-parallel", po::bool_switch(),
       "guided, the prompt and the negative prompt on two halves of 2 × --ulysses ranks, the "
       "velocities exchanged by one all-gather (implies --guided)");
  // clang-format on
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  bench::DitBenchOptions options;
  options.variant = (*vm)["variant"].as<std::string>();
  std::tie(options.width, options.height) = parse_size((*vm)["size"].as<std::string>());
  options.frames = (*vm)["frames"].as<int64_t>();
  options.iterations = (*vm)["iterations"].as<int>();
  options.warmup = (*vm)["warmup"].as<int>();
  options.seed = (*vm)["seed"].as<uint64_t>();
  options.shard_weights = (*vm)["shard-weights"].as<bool>();
  options.offload_blocks = (*vm)["offload-blocks"].as<bool>();
  if (vm->count("weights-dir")) options.weights_dir = (*vm)["weights-dir"].as<std::string>();
  options.guided = (*vm)["guided"].as<bool>();
  options.cfg_parallel = (*vm)["cfg-parallel"].as<bool>();
  return bench::run_dit_benchmark_command(options, ulysses_option(*vm), (*vm)["cpu"].as<bool>());
}

}  // namespace wanbatch::app
