// Random Wan DiT weights in the official layout, for tests, demos and benchmarks: tiny presets
// that run in seconds on a CPU, and real sizes (sharded like the official folders) for timing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "model/wan/config.h"

namespace wanbatch::model::wan {

struct TestModelOptions {
  std::string variant;  // a preset name (see preset_names())
  std::string output_dir;
  uint64_t seed = 0;
  core::DType dtype = core::DType::BF16;
  // Models larger than this are split into shards with a diffusion_pytorch_model.safetensors
  // index, as the official 14B folders are.
  int64_t shard_bytes = int64_t{4} << 30;
};

// Writes the model (two experts go to high_noise_model/ and low_noise_model/, as in Wan2.2's
// folders) with a config.json beside each; returns the folders written.
std::vector<std::string> write_test_model(const TestModelOptions& options);

// Random weights of this configuration in memory, by official name, each tensor from its own
// stream of `seed` (filled in parallel: a 14B model takes seconds, not minutes). For benchmarks.
std::map<std::string, core::Tensor> random_dit_weights(const DitConfig& config, uint64_t seed,
                                                       core::DType dtype);

// Writes one DiT of this configuration into `dir` (created if needed).
void write_test_dit(const DitConfig& config, const std::string& dir, uint64_t seed,
                    core::DType dtype, int64_t shard_bytes);

}  // namespace wanbatch::model::wan
