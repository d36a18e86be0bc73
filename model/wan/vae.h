// The Wan video VAEs (wan-spec "VAEs"): Wan2.1's (z 16, stride 4×8×8; also used by every A14B
// model) and Wan2.2's (z 48, stride 4×16×16, TI2V-5B), written once over core::ops. Like the
// official code they stream: decoding runs one latent frame at a time and encoding one chunk of
// 1, 4, 4, ... frames at a time, every causal convolution carrying the last frames it saw, so the
// memory beyond the output does not grow with the video's length. Scratch buffers are kept
// between chunks and calls and only grow when a larger video comes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "model/wan/weight_layout.h"

namespace wanbatch::model::wan {

namespace vae {
class Coder;
class Workspace;
}  // namespace vae

// The dimensions a Wan VAE checkpoint implies. The rest of the architecture is fixed by the
// official code: dim_mult [1, 2, 4, 4], 2 residual blocks per level, temporal down/upsampling at
// the two deepest levels, no attention but the middle block's.
struct VaeConfig {
  enum class Kind { Wan21, Wan22 };
  Kind kind = Kind::Wan21;
  int64_t dim = 96;      // encoder base width (Wan2.1 96, Wan2.2 160)
  int64_t dec_dim = 96;  // decoder base width (Wan2.1 the same as dim, Wan2.2 256)
  int64_t z_dim = 16;    // latent channels (16 or 48: the official normalisation constants)

  static VaeConfig official(Kind kind);
  int64_t spatial_stride() const { return kind == Kind::Wan21 ? 8 : 16; }
  static constexpr int64_t kTemporalStride = 4;
};

std::string vae_kind_name(VaeConfig::Kind kind);  // "Wan2.1 VAE" / "Wan2.2 VAE"

// Every tensor of a VAE of this configuration: official names and shapes, in checkpoint order.
std::vector<WeightSpec> vae_weight_specs(const VaeConfig& config);

// The official latent normalisation (Wan2_1_VAE / Wan2_2_VAE): per-channel mean and std; the
// DiT's latents are (mu − mean) / std.
const std::vector<float>& vae_latent_mean(VaeConfig::Kind kind);
const std::vector<float>& vae_latent_std(VaeConfig::Kind kind);

class WanVae {
 public:
  using Kind = VaeConfig::Kind;

  // From official state-dict names (the keys of Wan2.1_VAE.pth / Wan2.2_VAE.pth; ComfyUI files
  // use the same, possibly under a prefix such as "vae." or "first_stage_model.", which is
  // stripped). The kind and widths come from the tensors; a missing, unexpected or misshapen
  // tensor is an error listing them. Weights are converted to fp32 on the context's device.
  WanVae(const std::map<std::string, core::Tensor>& weights, const core::Context& ctx);
  ~WanVae();
  WanVae(WanVae&&) noexcept;
  WanVae& operator=(WanVae&&) noexcept;

  const VaeConfig& config() const { return config_; }
  Kind kind() const { return config_.kind; }
  int64_t latent_channels() const { return config_.z_dim; }  // 16 or 48
  // (4, 8, 8) or (4, 16, 16): frames, height, width
  std::array<int64_t, 3> stride() const;

  // [C, T, h, w] → [3, 1 + 4(T − 1), h·s, w·s]; throws for a wrong channel count or rank.
  core::Shape decoded_shape(const core::Shape& latents) const;
  // [3, F, H, W] → [C, (F − 1)/4 + 1, H/s, W/s]; throws unless F = 4k + 1 and H, W are multiples
  // of the spatial stride s.
  core::Shape encoded_shape(const core::Shape& video) const;

  // Normalised latents (as the DiT produces them) → video in [−1, 1]; video has decoded_shape.
  void decode(const core::Context& ctx, const core::Tensor& latents, core::Tensor& video);
  // Video in [−1, 1] → the normalised mean of the latent distribution; latents has encoded_shape.
  void encode(const core::Context& ctx, const core::Tensor& video, core::Tensor& latents);

  // How many latent frames the decoder takes at once after the first (which always goes alone),
  // and how many video frames the encoder takes at once after the first (a multiple of 4). The
  // official chunks are 1 and 4; larger ones give the same result with more memory (tests).
  void set_chunks(int64_t decode_latent_frames, int64_t encode_frames);

 private:
  VaeConfig config_;
  core::Tensor inv_std_, neg_mean_inv_std_;  // encode: (mu − mean)·(1/std)
  core::Tensor std_, mean_;                  // decode: z·std + mean
  core::Tensor conv1_weight_, conv1_bias_;   // encoder side 1×1×1 (2z → 2z)
  core::Tensor conv2_weight_, conv2_bias_;   // decoder side 1×1×1 (z → z)
  std::unique_ptr<vae::Coder> encoder_, decoder_;
  std::unique_ptr<vae::Workspace> workspace_;
  int64_t decode_chunk_ = 1, encode_chunk_ = 4;
};

}  // namespace wanbatch::model::wan
