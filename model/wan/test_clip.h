// Random CLIP vision tower weights under the open-clip names (F32), for tests and demos: any
// configuration, usually tiny_clip_config(), whose features feed the tiny-i2v-clip DiT.
#pragma once

#include <cstdint>
#include <string>

#include "model/wan/clip_vision.h"

namespace wanbatch::model::wan {

// Writes one safetensors file with every tensor of the tower (all `layers` blocks), the unused
// visual.post_norm.* and visual.head, and metadata "heads" (load_clip_vision reads the head count
// from it). Linear and conv weights and biases are uniform in ±1/sqrt(fan_in), LayerNorm weights
// in [0.9, 1.1] and biases in ±0.1, the class and positional embeddings in ±1/sqrt(dim), so
// activations stay O(1). The same seed gives the same file everywhere.
void write_test_clip(const std::string& path, const ClipVisionConfig& config, uint64_t seed);

}  // namespace wanbatch::model::wan
