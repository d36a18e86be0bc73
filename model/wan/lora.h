// LoRA merging at load time (wan-spec "LoRA"; how Wan2.2-Lightning is used): low-rank updates
// W += strength·(alpha/rank)·up·down, and full "diff" deltas, added in fp32 to the named weights.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

#include "model/wan/dit.h"

namespace wanbatch::model::wan {

struct LoraFile {
  std::string path;
  float strength = 1.0f;
};

// Parses "PATH" or "PATH:STRENGTH" (the command-line form); throws on a bad strength.
LoraFile parse_lora_argument(const std::string& argument);

// The updates of a set of LoRAs to a model's weights (official names), checked against their
// names and shapes when made and added one tensor at a time when asked, so that a model built
// block by block (sharded: each rank keeps a slice of every block) never holds more than one
// merged block at once. Key styles, checks and errors as merge_loras below.
class LoraUpdates {
 public:
  LoraUpdates(const WanDit::Weights& weights, const std::vector<LoraFile>& loras,
              bool lenient = false);
  bool touches(const std::string& name) const;
  // `base` (the tensor `name`) with its updates added, as a new fp32 host tensor; `base` itself
  // when no update touches it.
  core::Tensor apply(const std::string& name, const core::Tensor& base) const;

 private:
  struct Update {
    core::Tensor up, down;  // a low-rank pair [out, r], [r, in]; or `up` alone, a full delta
    float scale = 1.0f;
  };
  std::vector<std::shared_ptr<io::SafetensorsFile>> files_;  // keeps the LoRA tensors mapped
  std::map<std::string, std::vector<Update>> updates_;
};

// Merges every LoRA into `weights` (official names). Accepted key styles, each with or without a
// `diffusion_model.` / `model.diffusion_model.` / `transformer.` prefix, with official or
// diffusers module names, or kohya-style (`lora_unet_blocks_0_self_attn_q`):
//   <module>.lora_down.weight [r, in] + <module>.lora_up.weight [out, r] (+ <module>.alpha)
//   <module>.lora_A.weight [r, in] + <module>.lora_B.weight [out, r] (+ <module>.alpha)
//   <module>.diff (full delta of <module>.weight, or of <module> itself) and <module>.diff_b
// Without an alpha the scale is strength (alpha = rank). A key that matches no weight, a pair
// missing its other half, or a shape that does not fit is an error naming the file and key, or a
// warning (the key skipped) with `lenient`. Merged tensors become fp32 copies.
void merge_loras(WanDit::Weights& weights, const std::vector<LoraFile>& loras,
                 bool lenient = false);

}  // namespace wanbatch::model::wan
