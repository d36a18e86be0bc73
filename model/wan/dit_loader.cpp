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
    WB_CHECK(inserted, path, ": two tensors are both '", official,
             "' once prefixes are removed and names made official");
  }
  dequantize_scaled_fp8(weights, path);
  return weights;
}

namespace {

std::optional<int64_t> heads_or_config_json(const std::string& path, std::optional<int64_t> heads) {
  if (heads) return heads;
  namespace fs = std::filesystem;
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  return read_num_heads((dir / "config.json").string());
}

DitConfig detect_named(const std::string& path, const std::map<std::string, core::Shape>& shapes,
                       std::optional<int64_t> num_heads) {
  DitConfig config;
  try {
    config = detect(shapes, heads_or_config_json(path, num_heads));
  } catch (const Error& e) {
    throw make_error(path, ": ", e.what());
  }
  config.variant = name_expert(config.variant, expert_role(path));
  return config;
}

}  // namespace

DitConfig read_dit_config(const std::string& path, std::optional<int64_t> num_heads) {
  const io::Checkpoint checkpoint = io::Checkpoint::open(path);
  std::map<std::string, core::Shape> shapes;
  for (const std::string& name : checkpoint.names()) {
    const std::string official = official_dit_name(name);
    // fp8-scaled checkpoints carry scales beside the weights; they are not model tensors.
    if (is_scaled_fp8_extra(official)) continue;
    shapes[official] = checkpoint.info(name).shape;
  }
  return detect_named(path, shapes, num_heads);
}

WanDit load_dit(const std::string& path, const core::Context& ctx, const DitLoadOptions& options) {
  WanDit::Weights weights = read_dit_weights(path);
  std::map<std::string, core::Shape> shapes;
  for (const auto& [name, tensor] : weights) shapes[name] = tensor.shape();
  const DitConfig config = detect_named(path, shapes, options.num_heads);
  // Checked now, added tensor by tensor as the model takes its weights (one block at a time when
  // sharded), so no rank holds the whole merged model.
  const LoraUpdates loras(weights, options.loras, options.lora_lenient);
  const core::DType gemm_dtype =
      options.gemm_dtype.value_or(ctx.device().is_cuda() ? core::DType::BF16 : core::DType::F32);
  return WanDit(config, weights, ctx, gemm_dtype, options.shard_comm, options.offload_blocks,
                &loras);
}

}  // namespace wanbatch::model::wan
