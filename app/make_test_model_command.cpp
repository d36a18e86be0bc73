// wanbatch make-test-model: random weights in the official layout.
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "app/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hdf5_file.h"
#include "io/safetensors.h"
#include "model/sampling/philox_noise.h"
#include "model/wan/t5_encoder.h"
#include "model/wan/test_clip.h"
#include "model/wan/test_model.h"
#include "model/wan/test_vae.h"

namespace wanbatch::app {
namespace {

// A few lines of English the tiny tokenizer is trained on (it only has to split text into pieces).
constexpr const char* kTokenizerCorpus =
    "a red fox trotting through fresh snow in a pine forest\n"
    "a lighthouse on a rocky coast during a storm with waves crashing\n"
    "a paper boat drifting down a rain filled street gutter close up\n"
    "a cat sits on a mat while the dog runs in the park\n"
    "waves on the beach at dawn soft morning light cinematic\n"
    "blurry low quality static frame overexposed\n";

// A tiny SentencePiece unigram model (pad 0, </s> 1, unk 2, as umT5's) trained on the corpus above.
void write_test_tokenizer(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path corpus =
      std::filesystem::temp_directory_path() /
      ("wanbatch-corpus-" + std::to_string(std::random_device{}()) + ".txt");
  {
    std::ofstream out(corpus);
    for (int r = 0; r < 20; ++r) out << kTokenizerCorpus;
  }
  std::string prefix = path;
  if (target.extension() == ".model") prefix = (target.parent_path() / target.stem()).string();
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus.string() + " --model_prefix=" + prefix +
      " --vocab_size=64 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
      " --minloglevel=2 --hard_vocab_limit=false");
  std::filesystem::remove(corpus);
  WB_CHECK(status.ok(), "make-test-model --tokenizer ", path, ": ", status.ToString());
  std::filesystem::remove(prefix + ".vocab");
  if (prefix + ".model" != path) std::filesystem::rename(prefix + ".model", path);
}

// A tiny umT5 encoder with random weights whose output width is the DiT's text_dim.
void write_test_t5(const std::string& path, int64_t text_dim, uint64_t seed) {
  model::wan::T5Config c;
  c.vocab = 128;
  c.dim = text_dim;
  c.dim_attn = text_dim;
  c.ffn_dim = text_dim * 3 / 2;
  c.num_heads = 2;
  c.num_layers = 2;
  c.num_buckets = 32;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& [name, shape] : model::wan::t5_weight_shapes(c)) {
    std::vector<float> v(static_cast<size_t>(core::shape_numel(shape)));
    for (float& x : v) x = (name.find("norm") != std::string::npos ? 1.0f : 0.0f) + normal(rng);
    tensors.emplace_back(name, core::Tensor::from_vector(v, shape));
  }
  io::write_safetensors(path, tensors);
}

}  // namespace

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
    write_test_t5(path, model::wan::preset(options.variant).text_dim, options.seed + 300);
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
    write_test_tokenizer(path);
    std::cout << path << "\n";
  }
  return 0;
}

}  // namespace wanbatch::app
