// The shape of a Wan DiT (wan-spec "Variants"): dimensions detected from a checkpoint's tensor
// shapes, named presets for the released variants and for tiny test models, and the JSON config
// file (config.json) that official folders and our test models carry next to the weights.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wanbatch::model::wan {

struct DitConfig {
  std::string variant;  // human-readable: "Wan2.1 T2V-1.3B", "custom", ...
  int64_t dim = 0;
  int64_t ffn_dim = 0;
  int64_t num_heads = 0;
  int64_t num_layers = 0;
  int64_t in_dim = 0;  // latent channels in (plus the I2V condition channels)
  int64_t out_dim = 0;
  int64_t text_dim = 4096;
  int64_t freq_dim = 256;
  int64_t text_len = 512;
  std::vector<int64_t> patch_size{1, 2, 2};
  bool image_branch = false;  // Wan2.1 I2V: img_emb and k_img/v_img (CLIP features)
  int64_t image_dim = 1280;   // CLIP feature width of the image branch
  float eps = 1e-6f;

  int64_t head_dim() const { return num_heads ? dim / num_heads : 0; }
};

// Presets by name: tiny-t2v, tiny-t2v-a14b, tiny-i2v, tiny-i2v-a14b, tiny-i2v-clip, tiny-ti2v
// (test models) and
// wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.1-i2v-14b, wan2.2-t2v-a14b, wan2.2-i2v-a14b,
// wan2.2-ti2v-5b (real sizes). Throws listing the names otherwise.
DitConfig preset(const std::string& name);
std::vector<std::string> preset_names();
// Two-expert presets (wan2.2-t2v-a14b, wan2.2-i2v-a14b, tiny-t2v-a14b, tiny-i2v-a14b) are written
// as high/low-noise folders.
bool preset_has_two_experts(const std::string& name);

// Detects the configuration from tensor names (official names, prefixes already stripped) and
// shapes; head count = dim / 128 unless `num_heads` is given (from config.json or a flag).
// Throws listing what is missing when the tensors are not a Wan DiT.
DitConfig detect(const std::map<std::string, core::Shape>& shapes,
                 std::optional<int64_t> num_heads = std::nullopt);

// Wan2.2's two-expert models keep each expert in a folder named high_noise_model/ or
// low_noise_model/; "high-noise", "low-noise", or "" for weights elsewhere.
std::string expert_role(const std::string& weights_path);
// The variant name made precise by the expert folder: a T2V-A14B expert has the same tensors as
// Wan2.1 T2V-14B, and only its folder tells them apart.
std::string name_expert(const std::string& variant, const std::string& role);

// config.json as the official folders carry it ({"dim":..., "num_heads":..., ...}).
std::string to_config_json(const DitConfig& config);
// Reads num_heads (and checks the other fields it states against `config`) from a config.json.
std::optional<int64_t> read_num_heads(const std::string& config_json_path);

}  // namespace wanbatch::model::wan
