// Attention for head dims the kernels do not take, as three steps over whole score matrices (see
// core/cuda/attention.h). Plain C++ over the CUDA backend's ops: everything is queued on the
// context's stream.
#include <algorithm>
#include <cmath>

#include "core/cuda/attention.h"
#include "core/cuda/ops.h"
#include "core/error.h"

namespace wanbatch::core::cuda {
namespace {

// t [B, L, H, D] (any float dtype) as fp32 [B, H, L, D].
Tensor heads_first_f32(const Context& ctx, const Tensor& t) {
  const Shape shape{t.dim(0), t.dim(2), t.dim(1), t.dim(3)};
  Tensor f32 = t;
  if (t.dtype() != DType::F32) {
    f32 = Tensor::empty(t.shape(), DType::F32, t.device());
    cast(ctx, t, f32);
  }
  if (t.dim(2) == 1) return f32.reshape(shape);
  Tensor out = Tensor::empty(shape, DType::F32, t.device());
  permute(ctx, f32, {0, 2, 1, 3}, out);
  return out;
}

}  // namespace

void attention_by_gemm(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                       Tensor& out, const ops::AttentionOptions& options) {
  WB_CHECK(!options.bias.defined(),
           "attention: no kernel takes a bias with head dims over 256, "
           "got q ",
           q.describe());
  const int64_t batch = q.dim(0), lq = q.dim(1), heads = q.dim(2), lk = k.dim(1), dv = v.dim(3);
  const float scale_factor =
      options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(q.dim(3)));
  const Tensor qh = heads_first_f32(ctx, q), kh = heads_first_f32(ctx, k),
               vh = heads_first_f32(ctx, v);
  Tensor oh = Tensor::empty({batch, heads, lq, dv}, DType::F32, q.device());
  Tensor scores = Tensor::empty({lq * lk}, DType::F32, q.device());
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t keys =
        options.k_lens.empty() ? lk : std::clamp<int64_t>(options.k_lens[b], 0, lk);
    for (int64_t h = 0; h < heads; ++h) {
      Tensor o = oh.select(b).select(h);
      if (keys == 0) {  // every key masked: zeros, as the kernels give
        fill(ctx, o, 0.0f);
        continue;
      }
      Tensor s = scores.slice(0, lq * keys).reshape({lq, keys});
      matmul(ctx, qh.select(b).select(h), kh.select(b).select(h).slice(0, keys), s, true);
      scale(ctx, s, scale_factor, s);
      softmax(ctx, s, s);
      matmul(ctx, s, vh.select(b).select(h).slice(0, keys), o, false);
    }
  }
  // [B, H, Lq, Dv] → out [B, Lq, H, Dv] in out's dtype.
  Tensor result = oh;
  if (heads > 1) {
    result = Tensor::empty({batch, lq, heads, dv}, DType::F32, q.device());
    permute(ctx, oh, {0, 2, 1, 3}, result);
  }
  cast(ctx, result.reshape(out.shape()), out);
}

}  // namespace wanbatch::core::cuda
