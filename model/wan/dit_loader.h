// Loading a DiT as users have it: a file, an index JSON or a folder, in the official layout or
// with a distribution prefix, with LoRAs merged in at load time.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/wan/dit.h"
#include "model/wan/lora.h"

namespace wanbatch::model::wan {

struct DitLoadOptions {
  std::optional<int64_t> num_heads;  // default: config.json beside the weights, else dim/128
  std::vector<LoraFile> loras;
  bool lora_lenient = false;  // LoRA keys that fit nothing: warn and skip, not fail
  // The GEMMs' dtype (WanDit): default bf16 on a GPU, as the official code runs, and f32 on the
  // CPU, the reference.
  std::optional<core::DType> gemm_dtype;
  // Sharded weights (WanDit): every block's parameters split over these ranks (--shard-weights);
  // null: every rank holds the whole model.
  parallel::Comm* shard_comm = nullptr;
  // --offload blocks (WanDit): the blocks' parameters wait in pinned host memory.
  bool offload_blocks = false;

  static DitLoadOptions with_num_heads(int64_t heads) {
    DitLoadOptions options;
    options.num_heads = heads;
    return options;
  }
};

// The weights of a checkpoint by official name (prefixes stripped, diffusers names translated,
// ComfyUI fp8-scaled weights dequantized); throws if two tensors map to the same name.
WanDit::Weights read_dit_weights(const std::string& path);

// The configuration from the checkpoint's tensor names and shapes alone (no data is read), the
// head count from `num_heads`, else config.json beside the weights, else dim / 128, and the
// variant named by its expert folder. Throws naming the path.
DitConfig read_dit_config(const std::string& path, std::optional<int64_t> num_heads = std::nullopt);

// Detects the configuration, merges the LoRAs and builds the model on the context's device.
WanDit load_dit(const std::string& path, const core::Context& ctx,
                const DitLoadOptions& options = {});

}  // namespace wanbatch::model::wan
