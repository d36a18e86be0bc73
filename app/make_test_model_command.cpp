// wanbatch make-test-model: random weights in the official layout.
#include <iostream>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "model/wan/test_model.h"

namespace wanbatch::app {

int make_test_model_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = "make-test-model";
  spec.usage = "wanbatch make-test-model --variant NAME --output DIR [options]";
  std::string names;
  for (const std::string& n : model::wan::preset_names()) names += " " + n;
  spec.summary =
      "Writes a Wan DiT with random weights in the official layout (safetensors, sharded with an "
      "index above --shard-gb, config.json beside it; two-expert variants as high_noise_model/ "
      "and low_noise_model/).\nVariants:" + names;
  spec.options.add_options()
      ("variant", po::value<std::string>()->required(), "model preset (see above)")
      ("output", po::value<std::string>()->required(), "folder to write")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("dtype", po::value<std::string>()->default_value("bf16"), "f32, bf16 or f16")
      ("shard-gb", po::value<double>()->default_value(4.0), "largest shard size in GiB");
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  model::wan::TestModelOptions options;
  options.variant = (*vm)["variant"].as<std::string>();
  options.output_dir = (*vm)["output"].as<std::string>();
  options.seed = (*vm)["seed"].as<uint64_t>();
  options.dtype = core::parse_dtype((*vm)["dtype"].as<std::string>());
  WB_CHECK(core::is_floating(options.dtype) && options.dtype != core::DType::F8E4M3,
           "make-test-model: --dtype must be f32, bf16 or f16");
  const double shard_gb = (*vm)["shard-gb"].as<double>();
  WB_CHECK(shard_gb > 0, "make-test-model: --shard-gb must be positive");
  options.shard_bytes = static_cast<int64_t>(shard_gb * (1 << 30));
  for (const std::string& dir : model::wan::write_test_model(options)) {
    std::cout << dir << "\n";
  }
  WB_LOG(info) << "test model '" << options.variant << "' written to " << options.output_dir;
  return 0;
}

}  // namespace wanbatch::app
