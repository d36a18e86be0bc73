// The CLIP vision tower of Wan2.1 I2V (wan-spec "I2V", official `wan/modules/clip.py`:
// XLMRobertaCLIP.visual, a ViT-H/14 in open-clip layout, called as `CLIPModel.visual` with
// use_31_block=True), written over core::ops. The image, in [−1, 1], is resized (bicubic,
// align_corners=False) to image_size², mapped to [0, 1] and normalised with CLIP's mean/std; then a
// patch conv without bias (as im2col + linear), the class token in front, the positional
// embedding added, `pre_norm` LayerNorm, and the first out_layers of the pre-norm blocks
// (x += proj(attn(norm1(x))); x += fc2(gelu_erf(fc1(norm2(x))))). No post-norm, no head: the
// output is the penultimate layer's [tokens, dim] features the DiT's image branch projects.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace wanbatch::model::wan {

struct ClipVisionConfig {
  int64_t image_size = 224, patch = 14, dim = 1280, mlp = 5120, heads = 16, layers = 32;
  int64_t out_layers = 31;  // use_31_block: every block but the last
  double eps = 1e-5;        // LayerNorm eps of pre_norm and the blocks
  int64_t out_dim = 1024;   // the (unused) head's width, for test weights

  int64_t grid() const { return image_size / patch; }
  int64_t tokens() const { return grid() * grid() + 1; }  // the class token first
  int64_t head_dim() const { return dim / heads; }
};

// open-clip-xlm-roberta-large-vit-huge-14's visual tower: 224 px, patch 14, 1280 wide, 16 heads
// (head dim 80), 32 layers, mlp 5120; features of the first 31 blocks, 257 tokens.
ClipVisionConfig clip_vit_h14();
// A tiny tower for tests: still 224 px / patch 14 (the DiT's image branch takes exactly 257
// tokens), width 48 (the tiny-i2v-clip DiT preset's image_dim), 4 heads, 3 layers (2 used).
ClipVisionConfig tiny_clip_config();

// The open-clip names and shapes of the tensors the tower is built from (class token, positional
// embedding, patch conv, pre_norm and `layers` blocks). Also in the files, and not used:
// visual.post_norm.{weight,bias} [dim] and visual.head [dim, out_dim].
std::map<std::string, core::Shape> clip_vision_weight_shapes(const ClipVisionConfig& config);

class ClipVision {
 public:
  using Weights = std::map<std::string, core::Tensor>;  // open-clip names under "visual."

  // Converts the weights the first out_layers blocks need: the block GEMMs' to `gemm_dtype`
  // (the activations between them too; the residual stream, norms and embeddings stay fp32; the
  // official runs all of it in fp16), the rest to fp32, on the context's device. Throws naming a
  // missing or misshapen tensor; other tensors are ignored.
  ClipVision(const ClipVisionConfig& config, const Weights& weights, const core::Context& ctx,
             core::DType gemm_dtype = core::DType::F32);

  const ClipVisionConfig& config() const { return config_; }

  // image [3, H, W] f32 in [−1, 1] (any size, any device) → [tokens, dim] f32 on the context's
  // device, as CLIPModel.visual([image[:, None]]) returns them (without its batch dimension).
  core::Tensor encode(const core::Context& ctx, const core::Tensor& image);
  // The tower alone: `pixels` [3, image_size, image_size] already normalised, on the context's
  // device → [tokens, dim] f32.
  core::Tensor forward(const core::Context& ctx, const core::Tensor& pixels);

 private:
  struct Linear {
    core::Tensor weight, bias;
  };
  struct Block {
    core::Tensor norm1_weight, norm1_bias, norm2_weight, norm2_bias;
    Linear q, k, v, proj, fc1, fc2;  // q, k, v: the rows of the fused to_qkv
  };

  ClipVisionConfig config_;
  core::DType gemm_dtype_;
  core::Tensor patch_weight_;  // [dim, 3·patch·patch], fp32
  core::Tensor cls_, pos_;     // [1, dim], [tokens, dim]
  core::Tensor pre_norm_weight_, pre_norm_bias_;
  core::Tensor norm_scale_, norm_shift_;  // [3]: [−1, 1] → CLIP-normalised in one affine
  std::vector<Block> blocks_;
};

}  // namespace wanbatch::model::wan
