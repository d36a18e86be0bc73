#include "model/wan/dit_loader.h"

#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "model/wan/scaled_fp8.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {

WanDit::Weights read_dit_weights(const std::string& path) {
  const io::Checkpoint checkpoint = io::Checkpoint::open(path);
  WanDit::Weights weights;
  for (const std::string& name : checkpoint.names()) {
    const std::string official = official_dit_name(name);
    auto [it, inserted] = weights.emplace(official, checkpoint.tensor(name));
    WB_CHECK(inserted, path, ": two tensors are both '", official, "' once prefixes are removed and names made official");
  }
  dequantize_scaled_fp8(weights, path);
  return weights;
}

WanDit load_dit(const std::string& path, const core::Context& ctx, const DitLoadOptions& options) {
  WanDit::Weights weights = read_dit_weights(path);
  std::map<std::string, core::Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  std::optional<int64_t> num_heads = options.num_heads;
  if (!num_heads) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
    num_heads = read_num_heads((dir / "config.json").string());
  }
  DitConfig config;
  try {
    config = detect(shapes, num_heads);
  } catch (const Error& e) {
    throw make_error(path, ": ", e.what());
  }
  config.variant = name_expert(config.variant, expert_role(path));
  merge_loras(weights, options.loras, options.lora_lenient);
  return WanDit(config, weights, ctx);
}

}  // namespace wanbatch::model::wan
