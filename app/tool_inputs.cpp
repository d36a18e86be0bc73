#include "app/tool_inputs.h"

#include "core/error.h"

namespace wanbatch::app {

core::Tensor read_input(const io::Hdf5Reader& in, const std::string& name, int rank) {
  core::Tensor t = in.read(name);
  if (t.ndim() == rank + 1 && t.dim(0) == 1) {
    t = t.reshape(core::Shape(t.shape().begin() + 1, t.shape().end()));
  }
  WB_CHECK(t.ndim() == rank, "dataset '", name, "' in ", in.path(), " has shape ",
           core::shape_str(t.shape()), "; expected ", rank, " dimensions");
  return t.dtype() == core::DType::F32 ? t : t.to(core::DType::F32);
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

std::string describe_loras(const std::vector<model::wan::LoraFile>& loras) {
  std::string text;
  for (const auto& lora : loras) {
    text += (text.empty() ? "" : ", ") + lora.path + ":" + std::to_string(lora.strength);
  }
  return text;
}

}  // namespace wanbatch::app
