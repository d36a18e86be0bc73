#include "model/wan/test_vae.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace wanbatch::model::wan {

VaeConfig tiny_vae_config(VaeConfig::Kind kind) {
  VaeConfig c = VaeConfig::official(kind);
  c.dim = 8;
  c.dec_dim = kind == VaeConfig::Kind::Wan21 ? 8 : 16;
  return c;
}

void write_test_vae(const VaeConfig& config, const std::string& path, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](float lo, float hi) {
    // 24 random bits → [0, 1): the same numbers on every platform (unlike std distributions).
    const float unit = static_cast<float>(rng() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * unit;
  };
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const WeightSpec& spec : vae_weight_specs(config)) {
    core::Tensor values = core::Tensor::empty(spec.shape, core::DType::F32);
    float* data = values.data<float>();
    const float bound = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(spec.fan_in, 1)));
    const bool gamma = spec.kind == WeightSpec::Kind::NormWeight;
    for (int64_t i = 0; i < values.numel(); ++i) {
      data[i] = gamma ? uniform(0.9f, 1.1f) : uniform(-bound, bound);
    }
    tensors.emplace_back(spec.name, std::move(values));
  }
  io::write_safetensors(path, tensors,
                        {{"format", "pt"},
                         {"wanbatch", "random test weights"},
                         {"vae", vae_kind_name(config.kind)},
                         {"dim", std::to_string(config.dim)},
                         {"dec_dim", std::to_string(config.dec_dim)},
                         {"z_dim", std::to_string(config.z_dim)}});
}

void write_test_vae(VaeConfig::Kind kind, const std::string& path, uint64_t seed) {
  write_test_vae(VaeConfig::official(kind), path, seed);
}

}  // namespace wanbatch::model::wan
