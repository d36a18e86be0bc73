#include "model/wan/test_clip.h"

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace wanbatch::model::wan {

void write_test_clip(const std::string& path, const ClipVisionConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](float lo, float hi) {
    // 24 random bits → [0, 1): the same numbers on every platform (unlike std distributions).
    const float unit = static_cast<float>(rng() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * unit;
  };
  std::map<std::string, core::Shape> shapes = clip_vision_weight_shapes(config);
  shapes["visual.post_norm.weight"] = {config.dim};
  shapes["visual.post_norm.bias"] = {config.dim};
  shapes["visual.head"] = {config.dim, config.out_dim};
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const auto& [name, shape] : shapes) {
    core::Tensor values = core::Tensor::empty(shape, core::DType::F32);
    float* data = values.data<float>();
    const bool norm = name.find("norm") != std::string::npos;
    float lo, hi;
    if (norm) {
      lo = ends_with(name, ".weight") ? 0.9f : -0.1f;
      hi = ends_with(name, ".weight") ? 1.1f : 0.1f;
    } else {
      // fan_in: a weight's inputs (all but its first dimension); a bias's weight's; the
      // embeddings and head use the width.
      int64_t fan_in = config.dim;
      if (ends_with(name, "mlp.2.weight") || ends_with(name, "mlp.2.bias")) fan_in = config.mlp;
      if (name == "visual.patch_embedding.weight") fan_in = 3 * config.patch * config.patch;
      hi = 1.0f / std::sqrt(static_cast<float>(fan_in));
      lo = -hi;
    }
    for (int64_t i = 0; i < values.numel(); ++i) data[i] = uniform(lo, hi);
    tensors.emplace_back(name, std::move(values));
  }
  io::write_safetensors(path, tensors,
                        {{"format", "pt"},
                         {"wanbatch", "random test weights"},
                         {"model", "clip_vision"},
                         {"heads", std::to_string(config.heads)}});
}

}  // namespace wanbatch::model::wan
