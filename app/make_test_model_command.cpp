// wanbatch make-test-model: random weights in the official layout.
#include <iostream>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "model/sampling/philox_noise.h"
#include "model/wan/test_clip.h"
#include "model/wan/test_model.h"
#include "model/wan/test_text_encoder.h"
#include "model/wan/test_vae.h"

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
      "and low_noise_model/).\nVariants:" +
      names;
  // clang-format off
  spec.options.add_options()
      ("variant", po::value<std::string>()->required(), "model preset (see above)")
      ("output", po::value<std::string>()->required(), "folder to write")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("dtype", po::value<std::string>()->default_value("bf16"), "f32, bf16 or f16")
      ("shard-gb", po::value<double>()->default_value(4.0), "largest shard size in GiB")
      ("text-inputs", po::value<std::string>(),
       "also write this HDF5 file with random 'context' [7, text_dim] and 'context_null' "
       "[5, text_dim], stand-ins for text-encoder outputs (for tool dit / tool sample demos)")
      ("vae", po::value<std::string>(),
       "also write random weights of the VAE that goes with the model to this .safetensors file "
       "(Wan2.1's for 16 latent channels, Wan2.2's for 48; tiny widths for tiny presets)")
      ("t5", po::value<std::string>(),
       "also write a tiny umT5 text encoder with random weights (output width: the model's "
       "text_dim) to this .safetensors file (for tests and demos of wanbatch run)")
      ("clip", po::value<std::string>(),
       "also write a CLIP vision tower with random weights to this .safetensors file, for models "
       "with the image branch (tiny-i2v-clip: a tiny tower whose features fit its image_dim; "
       "wan2.1-i2v-14b: ViT-H/14's size)")
      ("tokenizer", po::value<std::string>(),
       "also write a tiny SentencePiece model (64 pieces, trained on a built-in English corpus) "
       "to this file (spiece.model), to go with --t5");
  // clang-format on
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
  if (vm->count("text-inputs")) {
    const int64_t text_dim = model::wan::preset(options.variant).text_dim;
    const std::string path = (*vm)["text-inputs"].as<std::string>();
    io::Hdf5Writer out(path);
    out.write("context", model::sampling::initial_noise(options.seed + 100, {7, text_dim}));
    out.write("context_null", model::sampling::initial_noise(options.seed + 101, {5, text_dim}));
    out.attribute("note", "random stand-ins for text-encoder outputs (wanbatch make-test-model)");
    out.commit();
    std::cout << path << "\n";
  }
  if (vm->count("vae")) {
    const model::wan::DitConfig config = model::wan::preset(options.variant);
    const auto kind = config.out_dim == 48 ? model::wan::VaeConfig::Kind::Wan22
                                           : model::wan::VaeConfig::Kind::Wan21;
    const std::string path = (*vm)["vae"].as<std::string>();
    const bool tiny = options.variant.rfind("tiny-", 0) == 0;
    if (tiny) {
      model::wan::write_test_vae(model::wan::tiny_vae_config(kind), path, options.seed + 200);
    } else {
      model::wan::write_test_vae(kind, path, options.seed + 200);
    }
    std::cout << path << "\n";
    WB_LOG(info) << (tiny ? "tiny " : "") << model::wan::vae_kind_name(kind) << " written to "
                 << path;
  }
  if (vm->count("t5")) {
    const std::string path = (*vm)["t5"].as<std::string>();
    model::wan::write_test_t5(path, model::wan::preset(options.variant).text_dim,
                              options.seed + 300);
    std::cout << path << "\n";
  }
  if (vm->count("clip")) {
    const model::wan::DitConfig config = model::wan::preset(options.variant);
    const std::string path = (*vm)["clip"].as<std::string>();
    WB_CHECK(config.image_branch, "make-test-model --clip: ", options.variant,
             " has no CLIP image branch (tiny-i2v-clip and wan2.1-i2v-14b have)");
    const bool tiny = options.variant.rfind("tiny-", 0) == 0;
    model::wan::write_test_clip(path,
                                tiny ? model::wan::tiny_clip_config() : model::wan::clip_vit_h14(),
                                options.seed + 400);
    std::cout << path << "\n";
  }
  if (vm->count("tokenizer")) {
    const std::string path = (*vm)["tokenizer"].as<std::string>();
    model::wan::write_test_tokenizer(path);
    std::cout << path << "\n";
  }
  return 0;
}

}  // namespace wanbatch::app
