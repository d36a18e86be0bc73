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

// Strips a known prefix (`model.diffusion_model.`, `diffusion_model.`, `model.`) from a tensor
// name; returns the name unchanged if it has none.
std::string strip_dit_prefix(const std::string& name);

}  // namespace wanbatch::model::wan
