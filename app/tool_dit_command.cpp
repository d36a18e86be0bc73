// wanbatch tool dit: one DiT forward from HDF5 inputs to an HDF5 velocity (DESIGN.md "Command
// line"), for checking the model against the official implementation on the same inputs.
#include <chrono>
#include <iostream>

#include "app/commands.h"
#include "app/tool_inputs.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "model/wan/dit_loader.h"
#include "version.h"

namespace wanbatch::app {

using core::Tensor;

int tool_dit_command(const Invocation& call) {
  CommandSpec spec;
  spec.name = call.command;
  spec.usage =
      "wanbatch tool dit --weights W [--lora L[:STRENGTH]]... --input IN.h5 --output OUT.h5";
  spec.summary =
      "Runs the Wan DiT once. IN.h5 holds latent [C,F,H,W] f32, timestep (one value, or one per "
      "token for TI2V), context [n,text_dim] (unpadded), for I2V y [C',F,H,W], and for Wan2.1 "
      "I2V clip [257,1280] CLIP features; OUT.h5 gets velocity [C_out,F,H,W] f32.";
  // clang-format off
  spec.options.add_options()
      ("weights", po::value<std::string>()->required(),
       "DiT weights: .safetensors file, *.safetensors.index.json or folder")
      ("lora", po::value<std::vector<std::string>>()->composing(),
       "LoRA file merged at load, PATH or PATH:STRENGTH (repeatable)")
      ("lora-lenient", po::bool_switch(), "warn about LoRA keys that fit no weight, not fail")
      ("num-heads", po::value<int64_t>(), "attention heads (default: config.json, else dim/128)")
      ("input", po::value<std::string>()->required(), "input HDF5 file")
      ("output", po::value<std::string>()->required(), "output HDF5 file (written atomically)");
  // clang-format on
  const auto vm = parse_command(spec, call);
  if (!vm) return 0;

  const std::string weights = (*vm)["weights"].as<std::string>();
  const std::string input_path = (*vm)["input"].as<std::string>();
  const std::string output_path = (*vm)["output"].as<std::string>();
  model::wan::DitLoadOptions options;
  if (vm->count("num-heads")) options.num_heads = (*vm)["num-heads"].as<int64_t>();
  options.lora_lenient = (*vm)["lora-lenient"].as<bool>();
  options.loras = lora_option(*vm, "lora");

  // Read the inputs first: a bad input file fails before the (long) weight load.
  const io::Hdf5Reader in = io::Hdf5Reader::open(input_path);
  model::wan::DitInput input;
  input.latent = read_input(in, "latent", 4);
  Tensor timestep = in.read("timestep");
  input.timestep = timestep.reshape({timestep.numel()}).to(core::DType::F32);
  input.context = read_input(in, "context", 2);
  if (in.has("y")) input.y = read_input(in, "y", 4);
  if (in.has("clip")) input.clip = read_input(in, "clip", 2);

  const core::Context ctx = core::Context::cpu();
  const auto load_start = std::chrono::steady_clock::now();
  model::wan::WanDit dit = model::wan::load_dit(weights, ctx, options);
  const model::wan::DitConfig& config = dit.config();
  if (input.clip.defined() && !config.image_branch) {
    WB_LOG(warning) << input_path << ": 'clip' ignored, " << config.variant
                    << " has no CLIP image branch";
    input.clip = Tensor();
  }
  const auto run_start = std::chrono::steady_clock::now();
  Tensor velocity =
      Tensor::empty({config.out_dim, input.latent.dim(1), input.latent.dim(2), input.latent.dim(3)},
                    core::DType::F32);
  try {
    dit.forward(ctx, input, velocity);
  } catch (const Error& e) {
    throw make_error(input_path, ": ", e.what());
  }
  const auto end = std::chrono::steady_clock::now();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  io::Hdf5Writer out(output_path);
  out.write("velocity", velocity);
  out.attribute("model_variant", config.variant);
  out.attribute("weights", weights);
  out.attribute("loras", describe_loras(options.loras));
  out.attribute("load_seconds", seconds(load_start, run_start));
  out.attribute("forward_seconds", seconds(run_start, end));
  out.attribute("wanbatch_version", std::string(WANBATCH_VERSION));
  out.commit();
  WB_LOG(info) << "velocity " << core::shape_str(velocity.shape()) << " written to " << output_path
               << " (" << config.variant << ", load " << seconds(load_start, run_start)
               << " s, forward " << seconds(run_start, end) << " s)";
  return 0;
}

}  // namespace wanbatch::app
