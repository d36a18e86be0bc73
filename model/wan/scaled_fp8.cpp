#include "model/wan/scaled_fp8.h"

#include <vector>

#include "core/error.h"

namespace wanbatch::model::wan {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// weight · scale in float32, the scale one value or one per row (dimension 0).
core::Tensor dequantize(const core::Tensor& weight, const core::Tensor& scale,
                        const std::string& where) {
  const int64_t rows = weight.ndim() == 0 ? 1 : weight.dim(0);
  const int64_t numel = weight.numel();
  WB_CHECK(scale.numel() == 1 || (scale.numel() == rows && scale.dim(0) == rows), where, ": scale ",
           scale.describe(), " fits neither the whole of weight ", weight.describe(),
           " nor its rows");
  const std::vector<float> s = scale.to_floats();
  core::Tensor out = weight.to(core::DType::F32);  // a new buffer: the weight may be a file mapping
  float* v = out.data<float>();
  const int64_t per_row = rows ? numel / rows : 0;
  for (int64_t i = 0; i < numel; ++i)
    v[i] *= s.size() == 1 ? s[0] : s[static_cast<size_t>(i / per_row)];
  return out;
}

}  // namespace

bool is_scaled_fp8_extra(const std::string& name) {
  return name == "scaled_fp8" || ends_with(name, ".scale_input") ||
         ends_with(name, ".input_scale") || ends_with(name, ".scale_weight") ||
         ends_with(name, ".weight_scale");
}

void dequantize_scaled_fp8(WanDit::Weights& weights, const std::string& source) {
  std::vector<std::string> scales, drop;
  for (const auto& [name, tensor] : weights) {
    if (name == "scaled_fp8" || ends_with(name, ".scale_input") ||
        ends_with(name, ".input_scale")) {
      drop.push_back(name);
    } else if (ends_with(name, ".scale_weight") || ends_with(name, ".weight_scale")) {
      scales.push_back(name);
    }
  }
  for (const std::string& name : scales) {
    const std::string module = name.substr(0, name.size() - std::string(".scale_weight").size());
    const auto weight = weights.find(module + ".weight");
    WB_CHECK(weight != weights.end(), source, ": fp8 scale '", name, "' has no weight '", module,
             ".weight' to scale");
    weight->second = dequantize(weight->second, weights.at(name), source + ": '" + name + "'");
    weights.erase(name);
  }
  for (const std::string& name : drop) weights.erase(name);
}

}  // namespace wanbatch::model::wan
