// The Wan video VAEs (wan-spec "VAEs"): Wan2.1's (z 16, stride 4×8×8; also used by every A14B
// model) and Wan2.2's (z 48, stride 4×16×16, TI2V-5B), written once over core::ops. Like the
// official code they stream: decoding runs one latent frame at a time and encoding one chunk of
// 1, 4, 4, ... frames at a time, every causal convolution carrying the last frames it saw, so the
// memory beyond the output does not grow with the video's length. Decoding can also be tiled in
// space (VaeTiling), so that it does not grow with the frame's size either. Scratch buffers are
// kept between chunks and calls and only grow when a larger video (or tile) comes.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

// Spatial tiling of the decoder, as diffusers' AutoencoderKLWan.tiled_decode does it: the latent
// frame is cut into tiles of `tile` × `tile` latent pixels whose neighbours share `overlap`
// pixels; each tile is decoded alone over all frames (its own causal caches, reset between tiles),
// and where two tiles overlap their outputs are blended with linear ramps whose weights sum to 1.
// Tiles at the right and bottom borders are smaller; a video no larger than one tile is decoded
// untiled, with the same result bit for bit. The decoder's activations then scale with the tile,
// not the frame: only the output video, the latents of one row of tiles and a tile-high strip of
// one output plane are frame-sized. (Scratch memory only grows: an untiled decode of a large frame
// keeps its buffers.)
// Encoding is never tiled: its latents feed the DiT, where an error changes the whole video.
//
// Defaults: 32 × 32 latent pixels (256 px for Wan2.1, 512 px for Wan2.2) overlapping by 8 (64 /
// 128 px), a quarter of the tile. For Wan2.1 these are diffusers' defaults (256 px tiles every
// 192 px), so results can be compared; a smaller tile costs more recomputed overlap and more
// error, a larger one more memory (it grows with the tile's area).
//
// Not exact: every output pixel depends on latents about 17 pixels away through the convolutions
// (Wan2.1's decoder) and on the whole frame through the middle block's attention, and a tile sees
// only itself. Measured against the untiled decode, random weights at the official widths, N(0, 1)
// latents, default tiles; errors on [−1, 1] (and on 0–255), PSNR on 0–255 over the whole video:
//   Wan2.1, 1 frame   384×384 (2×2 tiles): max 0.115 (14.6), mean 0.0072, PSNR 44.8 dB
//   Wan2.1, 1 frame   832×480 (4×3 tiles): max 0.132 (16.9), mean 0.0091, PSNR 43.2 dB
//   Wan2.1, 5 frames  288×288 (2×2 tiles): max 0.221 (28.2), mean 0.0122, PSNR 39.9 dB
//   Wan2.2, 1 frame   544×544 (2×2 tiles): max 0.119 (15.1), mean 0.0081, PSNR 43.8 dB
// The mean error in the overlaps is 3.5–4 times that elsewhere. Trained weights were not available
// here; their errors need not match these. Peak memory above the loaded weights, Wan2.1, one
// frame: untiled 2.3 GiB at 384×384 and 5.2 GiB at 832×480, tiled 0.9 GiB at both; the 4-frame
// chunks after the first frame take 1.5 GiB with a 256-px tile. Wan2.2's 512-px tile: 3.2 GiB (one
// frame). Time: the overlaps are decoded twice, 1.3–1.5× the untiled decode at these sizes.
struct VaeTiling {
  int64_t tile = 32;    // latent pixels per side of a tile
  int64_t overlap = 8;  // latent pixels shared by neighbouring tiles (2·overlap < tile)
};

// Tiling given in output pixels (the command line's --vae-tile-size, --vae-tile-overlap) → latent
// pixels for a VAE of this spatial stride (8 or 16). The tile defaults to VaeTiling's (32 latent
// pixels), the overlap to a quarter of the tile rounded down to the stride (as the defaults are).
// Throws unless both are multiples of the stride, the tile is positive and overlap < tile / 2.
VaeTiling vae_tiling_from_pixels(std::optional<int64_t> tile_pixels,
                                 std::optional<int64_t> overlap_pixels, int64_t spatial_stride);

// One tile along one axis: latent pixels [begin, begin + size) and the blending weight of each of
// its size·stride output pixels (ramps over the overlaps with its neighbours, 1 elsewhere). Over
// all spans of an axis the weights of every output pixel sum to 1.
struct VaeTileSpan {
  int64_t begin = 0, size = 0;
  std::vector<float> weights;
};
std::vector<VaeTileSpan> vae_tile_spans(int64_t latent_size, const VaeTiling& tiling,
                                        int64_t spatial_stride);

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
  // Tiled when set_tiling gave tiles and the latent frame is larger than one.
  void decode(const core::Context& ctx, const core::Tensor& latents, core::Tensor& video);
  // Video in [−1, 1] → the normalised mean of the latent distribution; latents has encoded_shape.
  void encode(const core::Context& ctx, const core::Tensor& video, core::Tensor& latents);

  // How many latent frames the decoder takes at once after the first (which always goes alone),
  // and how many video frames the encoder takes at once after the first (a multiple of 4). The
  // official chunks are 1 and 4; larger ones give the same result with more memory (tests).
  void set_chunks(int64_t decode_latent_frames, int64_t encode_frames);

  // Tiles decode in space (see VaeTiling), or not (nullopt, the default); encode is not tiled.
  // Throws for a tile < 1, a negative overlap or 2·overlap ≥ tile.
  void set_tiling(std::optional<VaeTiling> tiling);
  const std::optional<VaeTiling>& tiling() const { return tiling_; }

 private:
  // Decodes latents [C, T, h, w] chunk by chunk from a fresh cache, handing each chunk's frames
  // [3, n, h·s, w·s] (not clamped; valid until the next chunk) and the index of its first frame
  // to `sink`.
  using ChunkSink = std::function<void(core::Tensor& frames, int64_t first_frame)>;
  void decode_chunks(const core::Context& ctx, const core::Tensor& latents, const ChunkSink& sink);
  void decode_tiled(const core::Context& ctx, const core::Tensor& latents, core::Tensor& video);

  VaeConfig config_;
  core::Tensor inv_std_, neg_mean_inv_std_;  // encode: (mu − mean)·(1/std)
  core::Tensor std_, mean_;                  // decode: z·std + mean
  core::Tensor conv1_weight_, conv1_bias_;   // encoder side 1×1×1 (2z → 2z)
  core::Tensor conv2_weight_, conv2_bias_;   // decoder side 1×1×1 (z → z)
  std::unique_ptr<vae::Coder> encoder_, decoder_;
  std::unique_ptr<vae::Workspace> workspace_;
  int64_t decode_chunk_ = 1, encode_chunk_ = 4;
  std::optional<VaeTiling> tiling_;
};

}  // namespace wanbatch::model::wan
