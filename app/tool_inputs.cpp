#include "app/tool_inputs.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/rank_device.h"

namespace wanbatch::app {

core::Tensor read_input(const io::Hdf5Reader& in, const std::string& name, int rank) {
  return in.read_f32(name, rank);
}

std::vector<model::wan::LoraFile> lora_option(const po::variables_map& vm, const std::string& key) {
  std::vector<model::wan::LoraFile> loras;
  if (!vm.count(key)) return loras;
  for (const std::string& arg : vm[key].as<std::vector<std::string>>()) {
    loras.push_back(model::wan::parse_lora_argument(arg));
  }
  return loras;
}

void add_vae_tiling_options(po::options_description& options) {
  // clang-format off
  options.add_options()
      ("vae-tile", po::bool_switch(),
       "decode in overlapping spatial tiles, so memory follows the tile, not the frame (default "
       "tiles: 256 px overlapping by 64 for Wan2.1's VAE, 512 by 128 for Wan2.2's; slightly "
       "different pixels, see README)")
      ("vae-tile-size", po::value<int64_t>(),
       "tile side in video pixels, a multiple of the VAE stride (8 or 16); implies --vae-tile")
      ("vae-tile-overlap", po::value<int64_t>(),
       "pixels shared by neighbouring tiles, a multiple of the VAE stride, less than half the "
       "tile (default a quarter of it); implies --vae-tile");
  // clang-format on
}

std::optional<model::wan::VaeTiling> vae_tiling_option(const po::variables_map& vm,
                                                       const model::wan::WanVae& vae) {
  if (!vm["vae-tile"].as<bool>() && !vm.count("vae-tile-size") && !vm.count("vae-tile-overlap")) {
    return std::nullopt;
  }
  auto pixels = [&](const char* key) {
    return vm.count(key) ? std::optional<int64_t>(vm[key].as<int64_t>()) : std::nullopt;
  };
  try {
    return model::wan::vae_tiling_from_pixels(pixels("vae-tile-size"), pixels("vae-tile-overlap"),
                                              vae.config().spatial_stride());
  } catch (const Error& e) {
    throw make_error("--vae-tile: ", e.what());
  }
}

void add_expert_options(po::options_description& options) {
  // clang-format off
  options.add_options()
      ("lora", po::value<std::vector<std::string>>()->composing(),
       "LoRA merged into the (low-noise) model, PATH or PATH:STRENGTH (repeatable)")
      ("high-noise-lora", po::value<std::vector<std::string>>()->composing(),
       "LoRA merged into the high-noise expert (repeatable)")
      ("lora-lenient", po::bool_switch(), "warn about LoRA keys that fit no weight, not fail")
      ("num-heads", po::value<int64_t>(), "attention heads (default: config.json, else dim/128)");
  // clang-format on
}

std::pair<model::wan::DitLoadOptions, model::wan::DitLoadOptions> expert_load_options(
    const po::variables_map& vm) {
  model::wan::DitLoadOptions low;
  if (vm.count("num-heads")) low.num_heads = vm["num-heads"].as<int64_t>();
  low.lora_lenient = vm["lora-lenient"].as<bool>();
  model::wan::DitLoadOptions high = low;
  low.loras = lora_option(vm, "lora");
  high.loras = lora_option(vm, "high-noise-lora");
  return {low, high};
}

std::string describe_loras(const std::vector<model::wan::LoraFile>& loras) {
  std::string text;
  for (const auto& lora : loras) {
    text += (text.empty() ? "" : ", ") + lora.path + ":" + std::to_string(lora.strength);
  }
  return text;
}

void add_parallel_options(po::options_description& options) {
  // clang-format off
  options.add_options()
      ("ulysses", po::value<int>()->default_value(1),
       "Ulysses sequence parallelism: N ranks share each item's token sequence (N divides the "
       "model's heads)")
      ("cfg-parallel", po::bool_switch(),
       "run the prompt and the negative prompt of guided steps on two ranks")
      ("shard-weights", po::value<std::string>()->default_value("auto"),
       "split every DiT block's weights (and, in run without --embedding-cache, the text "
       "encoder's layers) over the --ulysses ranks, gathering each just before it runs: auto "
       "(when --ulysses > 1), on or off")
      ("offload", po::value<std::string>()->default_value("none"),
       "keep weights in host memory: 'blocks' (the DiT blocks wait in pinned host memory and are "
       "copied in a block ahead), 'model' (a model leaves the GPU while another runs: the other "
       "expert, the text encoder, the DiT during decoding), 'blocks,model' or 'none'");
  // clang-format on
}

int ulysses_option(const po::variables_map& vm) {
  const int sp = vm["ulysses"].as<int>();
  WB_CHECK(sp >= 1, "--ulysses must be at least 1, not ", sp);
  return sp;
}

bool cfg_parallel_option(const po::variables_map& vm) { return vm["cfg-parallel"].as<bool>(); }

parallel::Comm* shard_weights_option(const po::variables_map& vm, const parallel::Groups& groups) {
  const std::string mode = vm["shard-weights"].as<std::string>();
  WB_CHECK(mode == "auto" || mode == "on" || mode == "off", "--shard-weights '", mode,
           "': expected auto, on or off");
  if (mode == "off" || groups.topology.sp == 1) return nullptr;  // one rank: nothing to split
  return groups.sp.get();
}

OffloadOption offload_option(const po::variables_map& vm) {
  const std::string text = vm["offload"].as<std::string>();
  OffloadOption o;
  if (text == "none") return o;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    const std::string part = text.substr(begin, end - begin);
    if (part == "blocks") {
      o.blocks = true;
    } else if (part == "model") {
      o.model = true;
    } else {
      throw make_error("--offload '", text, "': expected none, blocks, model or blocks,model");
    }
    begin = end + 1;
  }
  return o;
}

std::pair<int64_t, int64_t> parse_size(const std::string& text) {
  const size_t x = text.find('x');
  try {
    size_t used_w = 0, used_h = 0;
    const int64_t w = std::stoll(text.substr(0, x), &used_w);
    const int64_t h = std::stoll(text.substr(x + 1), &used_h);
    if (x != std::string::npos && used_w == x && used_h == text.size() - x - 1) return {w, h};
  } catch (const std::exception&) {
  }
  throw make_error("--size '", text, "': expected WIDTHxHEIGHT, e.g. 832x480");
}

void add_device_option(po::options_description& options) {
  options.add_options()("device", po::value<std::string>()->default_value("auto"),
                        "where the models run: auto (a GPU when there is one), cuda or cpu");
}

core::Context device_context(const po::variables_map& vm) {
  return parallel::rank_device_context(vm["device"].as<std::string>());
}

}  // namespace wanbatch::app
