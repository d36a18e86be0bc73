// ComfyUI's fp8-scaled checkpoints (the `*_fp8_scaled.safetensors` files): Linear weights stored
// as float8 e4m3 with a float32 scale beside each, value = fp8 · scale. Two spellings exist: the
// older `<module>.scale_weight` (with a `scaled_fp8` marker tensor and `<module>.scale_input`)
// and the newer `<module>.weight_scale` (with `<module>.input_scale`). Plain fp8 files without
// scales need nothing from here: their weights are converted like bf16 ones.
#pragma once

#include <string>

#include "model/wan/dit.h"

namespace wanbatch::model::wan {

// Replaces every scaled weight by its float32 value and removes the scale and marker tensors
// (the input scales only serve fp8 matmuls, which the model does not do). A scale is one value or
// one per output row. A scale without its weight, or of a shape that fits neither, is an error
// naming `source` and the tensor.
void dequantize_scaled_fp8(WanDit::Weights& weights, const std::string& source);

// Whether a tensor name (official form) is one of the scale or marker tensors above.
bool is_scaled_fp8_extra(const std::string& name);

}  // namespace wanbatch::model::wan
