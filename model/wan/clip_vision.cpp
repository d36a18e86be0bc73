#include "model/wan/clip_vision.h"

#include <array>
#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "io/image_resize.h"

namespace wanbatch::model::wan {
namespace {

namespace ops = core::ops;
using core::DType;
using core::Shape;
using core::Tensor;

// CLIP's Normalize constants (clip.py `_clip`, the non-SigLIP branch).
constexpr std::array<double, 3> kMean{0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kStd{0.26862954, 0.26130258, 0.27577711};

std::string block_name(int64_t i, const std::string& rest) {
  return "visual.transformer." + std::to_string(i) + "." + rest;
}

}  // namespace

ClipVisionConfig clip_vit_h14() { return ClipVisionConfig{}; }

ClipVisionConfig tiny_clip_config() {
  ClipVisionConfig c;
  c.dim = 48;
  c.mlp = 192;
  c.heads = 4;
  c.layers = 3;
  c.out_layers = 2;
  c.out_dim = 32;
  return c;
}

std::map<std::string, Shape> clip_vision_weight_shapes(const ClipVisionConfig& c) {
  std::map<std::string, Shape> shapes;
  shapes["visual.patch_embedding.weight"] = {c.dim, 3, c.patch, c.patch};
  shapes["visual.cls_embedding"] = {1, 1, c.dim};
  shapes["visual.pos_embedding"] = {1, c.tokens(), c.dim};
  shapes["visual.pre_norm.weight"] = {c.dim};
  shapes["visual.pre_norm.bias"] = {c.dim};
  for (int64_t i = 0; i < c.layers; ++i) {
    for (const char* norm : {"norm1", "norm2"}) {
      shapes[block_name(i, std::string(norm) + ".weight")] = {c.dim};
      shapes[block_name(i, std::string(norm) + ".bias")] = {c.dim};
    }
    shapes[block_name(i, "attn.to_qkv.weight")] = {3 * c.dim, c.dim};
    shapes[block_name(i, "attn.to_qkv.bias")] = {3 * c.dim};
    shapes[block_name(i, "attn.proj.weight")] = {c.dim, c.dim};
    shapes[block_name(i, "attn.proj.bias")] = {c.dim};
    shapes[block_name(i, "mlp.0.weight")] = {c.mlp, c.dim};
    shapes[block_name(i, "mlp.0.bias")] = {c.mlp};
    shapes[block_name(i, "mlp.2.weight")] = {c.dim, c.mlp};
    shapes[block_name(i, "mlp.2.bias")] = {c.dim};
  }
  return shapes;
}

ClipVision::ClipVision(const ClipVisionConfig& config, const Weights& weights,
                       const core::Context& ctx, DType gemm_dtype)
    : config_(config), gemm_dtype_(gemm_dtype) {
  const ClipVisionConfig& c = config;
  WB_CHECK(gemm_dtype == DType::F32 || gemm_dtype == DType::BF16 || gemm_dtype == DType::F16,
           "CLIP vision: GEMMs in ", core::dtype_name(gemm_dtype),
           " are not supported (f32, bf16, f16)");
  WB_CHECK(c.patch > 0 && c.image_size % c.patch == 0, "CLIP vision: image size ", c.image_size,
           " is not a multiple of the patch size ", c.patch);
  WB_CHECK(c.heads > 0 && c.dim % c.heads == 0, "CLIP vision: width ", c.dim,
           " is not a multiple of the ", c.heads, " heads");
  WB_CHECK(c.out_layers >= 0 && c.out_layers <= c.layers, "CLIP vision: ", c.out_layers,
           " output layers of ", c.layers);
  const std::map<std::string, Shape> expected = clip_vision_weight_shapes(c);
  auto get = [&](const std::string& name, DType dtype = DType::F32) {
    auto it = weights.find(name);
    WB_CHECK(it != weights.end(), "CLIP vision weights: tensor '", name, "' is missing");
    WB_CHECK(it->second.shape() == expected.at(name), "CLIP vision weights: tensor '", name,
             "' is ", it->second.describe(), ", expected ", core::shape_str(expected.at(name)));
    return it->second.to(ctx.device()).to(dtype);
  };
  const auto device = ctx.device();
  patch_weight_ = get("visual.patch_embedding.weight").reshape({c.dim, 3 * c.patch * c.patch});
  cls_ = get("visual.cls_embedding").reshape({1, c.dim});
  pos_ = get("visual.pos_embedding").reshape({c.tokens(), c.dim});
  pre_norm_weight_ = get("visual.pre_norm.weight");
  pre_norm_bias_ = get("visual.pre_norm.bias");
  // x·0.5 + 0.5, then (x − mean)/std: x·(0.5/std) + (0.5 − mean)/std.
  std::vector<float> scale(3), shift(3);
  for (size_t i = 0; i < 3; ++i) {
    scale[i] = static_cast<float>(0.5 / kStd[i]);
    shift[i] = static_cast<float>((0.5 - kMean[i]) / kStd[i]);
  }
  norm_scale_ = Tensor::from_vector(scale, {3}).to(device);
  norm_shift_ = Tensor::from_vector(shift, {3}).to(device);

  for (int64_t i = 0; i < c.out_layers; ++i) {
    Block b;
    b.norm1_weight = get(block_name(i, "norm1.weight"));
    b.norm1_bias = get(block_name(i, "norm1.bias"));
    b.norm2_weight = get(block_name(i, "norm2.weight"));
    b.norm2_bias = get(block_name(i, "norm2.bias"));
    // to_qkv's output rows are q, k, v in turn (clip.py views it as [.., 3, heads, head_dim]).
    const Tensor qkv_weight = get(block_name(i, "attn.to_qkv.weight"), gemm_dtype);
    const Tensor qkv_bias = get(block_name(i, "attn.to_qkv.bias"), gemm_dtype);
    Linear* parts[3] = {&b.q, &b.k, &b.v};
    for (int64_t p = 0; p < 3; ++p) {
      parts[p]->weight = qkv_weight.slice(p * c.dim, (p + 1) * c.dim);
      parts[p]->bias = qkv_bias.slice(p * c.dim, (p + 1) * c.dim);
    }
    b.proj = {get(block_name(i, "attn.proj.weight"), gemm_dtype),
              get(block_name(i, "attn.proj.bias"), gemm_dtype)};
    b.fc1 = {get(block_name(i, "mlp.0.weight"), gemm_dtype),
             get(block_name(i, "mlp.0.bias"), gemm_dtype)};
    b.fc2 = {get(block_name(i, "mlp.2.weight"), gemm_dtype),
             get(block_name(i, "mlp.2.bias"), gemm_dtype)};
    blocks_.push_back(std::move(b));
  }
}

Tensor ClipVision::encode(const core::Context& ctx, const Tensor& image) {
  const int64_t size = config_.image_size;
  WB_CHECK(image.ndim() == 3 && image.dim(0) == 3 && image.dtype() == DType::F32,
           "CLIP vision: the image must be [3, H, W] f32, got ", image.describe());
  // F.interpolate(bicubic, align_corners=False) to size²; at the same size it is the identity.
  Tensor resized = image.dim(1) == size && image.dim(2) == size
                       ? image
                       : io::resize_bicubic(image.to(core::Device::cpu()), size, size);
  Tensor pixels = Tensor::empty({3, size, size}, DType::F32, ctx.device());
  ops::channel_affine(ctx, resized.to(ctx.device()), norm_scale_, norm_shift_, pixels);
  return forward(ctx, pixels);
}

Tensor ClipVision::forward(const core::Context& ctx, const Tensor& pixels) {
  const ClipVisionConfig& c = config_;
  const int64_t tokens = c.tokens(), grid = c.grid(), p = c.patch, dim = c.dim;
  WB_CHECK(pixels.shape() == Shape({3, c.image_size, c.image_size}) &&
               pixels.dtype() == DType::F32 && pixels.device() == ctx.device(),
           "CLIP vision: pixels must be [3, ", c.image_size, ", ", c.image_size, "] f32 on ",
           ctx.device().str(), ", got ", pixels.describe());
  const auto device = ctx.device();
  auto make = [device](const Shape& shape, DType dtype = DType::F32) {
    return Tensor::empty(shape, dtype, device);
  };

  // Patch conv (stride = kernel, no bias) as im2col + linear: patches in (row, column) order,
  // each flattened as (channel, y, x) like the conv weight.
  Tensor patches = make({grid, grid, 3, p, p});
  ops::permute(ctx, pixels.reshape({3, grid, p, grid, p}), {1, 3, 0, 2, 4}, patches);
  Tensor x = make({tokens, dim});
  Tensor patch_rows = x.slice(1, tokens);
  ops::linear(ctx, patches.reshape({tokens - 1, 3 * p * p}), patch_weight_, Tensor(), patch_rows);
  ops::copy_slice(ctx, cls_, 0, 0, x, 0, 1);
  ops::add(ctx, x, pos_, x);
  ops::layer_norm(ctx, x, pre_norm_weight_, pre_norm_bias_, static_cast<float>(c.eps), x);

  const DType low = gemm_dtype_;
  Tensor normed = make({tokens, dim}, low), q = make({tokens, dim}, low),
         k = make({tokens, dim}, low), v = make({tokens, dim}, low),
         attn = make({tokens, dim}, low), proj = make({tokens, dim}, low),
         hidden = make({tokens, c.mlp}, low);
  const Shape heads{1, tokens, c.heads, c.head_dim()};
  const auto eps = static_cast<float>(c.eps);
  for (const Block& b : blocks_) {
    // Self-attention, scale 1/sqrt(head_dim), no mask.
    ops::layer_norm(ctx, x, b.norm1_weight, b.norm1_bias, eps, normed);
    ops::linear(ctx, normed, b.q.weight, b.q.bias, q);
    ops::linear(ctx, normed, b.k.weight, b.k.bias, k);
    ops::linear(ctx, normed, b.v.weight, b.v.bias, v);
    Tensor attn_heads = attn.reshape(heads);
    ops::attention(ctx, q.reshape(heads), k.reshape(heads), v.reshape(heads), attn_heads);
    ops::linear(ctx, attn, b.proj.weight, b.proj.bias, proj);
    ops::add(ctx, x, proj, x);
    // MLP with exact (erf) GELU: activation='gelu' is nn.GELU().
    ops::layer_norm(ctx, x, b.norm2_weight, b.norm2_bias, eps, normed);
    ops::linear(ctx, normed, b.fc1.weight, b.fc1.bias, hidden);
    ops::gelu_erf(ctx, hidden, hidden);
    ops::linear(ctx, hidden, b.fc2.weight, b.fc2.bias, proj);
    ops::add(ctx, x, proj, x);
  }
  return x;
}

}  // namespace wanbatch::model::wan
