// Random Wan VAE weights under the official names (F32), for tests, demos and benchmarks: the
// official widths, or tiny ones that decode a clip in well under a second on a CPU.
#pragma once

#include <cstdint>
#include <string>

#include "model/wan/vae.h"

namespace wanbatch::model::wan {

// The official architecture at small widths: Wan2.1 dim 8; Wan2.2 dim 8, dec_dim 16.
VaeConfig tiny_vae_config(VaeConfig::Kind kind);

// Writes one safetensors file. Conv weights are uniform in ±1/sqrt(fan_in) (PyTorch's default
// scale), biases likewise, RMS gammas in [0.9, 1.1], so activations stay O(1) through the network
// and decoded videos mostly inside [−1, 1]. The same seed gives the same file everywhere.
void write_test_vae(const VaeConfig& config, const std::string& path, uint64_t seed);
// The official widths (127M parameters for Wan2.1, 705M for Wan2.2).
void write_test_vae(VaeConfig::Kind kind, const std::string& path, uint64_t seed);

}  // namespace wanbatch::model::wan
