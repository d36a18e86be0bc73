// The tensors a Wan DiT checkpoint holds, in the official names (wan-spec "Checkpoint names"), and
// the prefixes other distributions put in front of them.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/wan/config.h"

namespace wanbatch::model::wan {

struct WeightSpec {
  std::string name;
  core::Shape shape;
  int64_t fan_in = 0;  // input width feeding this parameter, for random initialisation
  enum class Kind { Linear, Bias, NormWeight, NormBias, Modulation } kind = Kind::Linear;
};

// Every tensor of a DiT with this configuration, in checkpoint order.
std::vector<WeightSpec> dit_weight_specs(const DitConfig& config);

// Strips a known prefix (`model.diffusion_model.`, `diffusion_model.`, `transformer.`, `model.`)
// from a tensor name; returns the name unchanged if it has none.
std::string strip_dit_prefix(const std::string& name);

// The official name of a DiT tensor (or module) given in any layout users have: official, with a
// ComfyUI/diffusers prefix, or in diffusers' own names (`blocks.0.attn1.to_q.weight`,
// `condition_embedder.time_proj.bias`, `scale_shift_table`, ...), the inverse of the rename in
// diffusers' scripts/convert_wan_to_diffusers.py. Names it does not know come back prefix-stripped.
std::string official_dit_name(const std::string& name);

}  // namespace wanbatch::model::wan
