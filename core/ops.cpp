// Argument validation shared by both backends, then dispatch to core/cpu or core/cuda.
#include "core/ops.h"

#include <algorithm>

#include "core/cpu/kernels.h"
#include "core/cuda/ops.h"
#include "core/error.h"
#include "core/profiler.h"

namespace wanbatch::core::ops {
namespace {

// Every defined tensor an op touches must be on the context's device.
void check_devices(const char* op, const Context& ctx, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    WB_CHECK(t->device() == ctx.device(), op, ": tensor ", t->describe(), " is not on ",
             ctx.device().str(), ", the context's device");
  }
}

void check_floating(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    WB_CHECK(is_floating(t->dtype()) && t->dtype() != DType::F8E4M3, op, ": tensor ", t->describe(),
             " must be f32, bf16 or f16");
  }
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  WB_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", a.describe(), " and ", b.describe());
}

// b's shape must be a trailing part of a's (b broadcast over a's leading dimensions).
void check_trailing(const char* op, const Tensor& a, const Tensor& b) {
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  bool ok = bs.size() <= as.size() && std::equal(bs.rbegin(), bs.rend(), as.rbegin());
  WB_CHECK(ok, op, ": ", b.describe(), " does not broadcast against ", a.describe());
}

// A modulation vector for [L, D] rows: [D], [1, D] or [L, D].
void check_modulation(const char* op, const char* what, const Tensor& x, const Tensor& m) {
  WB_CHECK(m.defined(), op, ": ", what, " is undefined");
  const int64_t rows = x.dim(0), width = x.dim(1);
  const bool ok = (m.ndim() == 1 && m.dim(0) == width) ||
                  (m.ndim() == 2 && (m.dim(0) == 1 || m.dim(0) == rows) && m.dim(1) == width);
  WB_CHECK(ok, op, ": ", what, " ", m.describe(), " does not fit rows ", x.describe(),
           " (expected [D], [1, D] or [L, D])");
}

// A dimension index, negative counting from the end, checked against the tensor.
int checked_dim(const char* op, const Tensor& x, int dim) {
  const int n = x.ndim();
  const int d = dim < 0 ? dim + n : dim;
  WB_CHECK(d >= 0 && d < n, op, ": dimension ", dim, " out of range for ", x.describe());
  return d;
}

// [C] per-channel parameter for x [C, ...].
void check_channel_vector(const char* op, const char* what, const Tensor& x, const Tensor& p) {
  WB_CHECK(p.ndim() == 1 && p.dim(0) == x.dim(0), op, ": ", what, " ", p.describe(),
           " must be [C] for x ", x.describe());
}

}  // namespace

void cast(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "cast");
  check_devices("cast", ctx, {&x, &out});
  WB_CHECK(x.numel() == out.numel(), "cast: ", x.describe(), " into ", out.describe(),
           ": element counts differ");
  if (ctx.device().is_cuda()) return cuda::cast(ctx, x, out);
  cpu::cast(x, out);
}

void fill(const Context& ctx, Tensor& out, float value) {
  const ProfileScope profile(ctx, "fill");
  check_devices("fill", ctx, {&out});
  if (ctx.device().is_cuda()) return cuda::fill(ctx, out, value);
  cpu::fill(out, value);
}

namespace {

void check_linear(const char* op, const Context& ctx, const Tensor& x, const Tensor& weight,
                  const Tensor& bias, const Tensor& out) {
  check_devices(op, ctx, {&x, &weight, &bias, &out});
  check_floating(op, {&x, &weight, &bias, &out});
  WB_CHECK(x.ndim() >= 1 && weight.ndim() == 2 && x.dim(-1) == weight.dim(1), op, ": input ",
           x.describe(), " does not match weight ", weight.describe(), " ([out, in])");
  WB_CHECK(!bias.defined() || (bias.ndim() == 1 && bias.dim(0) == weight.dim(0)), op, ": bias ",
           bias.describe(), " does not match weight ", weight.describe());
  Shape expected = x.shape();
  expected.back() = weight.dim(0);
  WB_CHECK(out.shape() == expected, op, ": output ", out.describe(), ", expected ",
           shape_str(expected));
}

// The dtype combinations the cuBLASLt GEMM takes: both operands of one dtype (bf16 or f16 with
// fp32 accumulation, or f32), the output in f32 or that dtype, a bias in f32 or that dtype.
void check_cuda_gemm_dtypes(const char* op, const Tensor& a, const Tensor& b, const Tensor& bias,
                            const Tensor& out) {
  const DType t = a.dtype();
  // An f32 bias with a bf16/f16 output is refused: cuBLASLt has no such epilogue, and adding it
  // after the GEMM's rounding loses the small results of cancelling sums (measured: 4 ulps).
  const bool ok = b.dtype() == t && (out.dtype() == t || out.dtype() == DType::F32) &&
                  (!bias.defined() || bias.dtype() == t || out.dtype() == DType::F32);
  WB_CHECK(ok, op,
           ": the CUDA GEMM needs both operands in one dtype (f32, bf16 or f16), the "
           "output in f32 or that dtype, and a bias in the operands' dtype (or f32 with an f32 "
           "output); got ",
           a.describe(), ", ", b.describe(),
           bias.defined() ? ", bias " + bias.describe() : std::string(), " → ", out.describe());
}

}  // namespace

void linear(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            Tensor& out) {
  const ProfileScope profile(ctx, "linear");
  check_linear("linear", ctx, x, weight, bias, out);
  if (ctx.device().is_cuda()) {
    check_cuda_gemm_dtypes("linear", x, weight, bias, out);
    return cuda::linear(ctx, x, weight, bias, out);
  }
  cpu::linear(x, weight, bias, out);
}

void linear_gelu_tanh(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      Tensor& out) {
  const ProfileScope profile(ctx, "linear_gelu_tanh");
  check_linear("linear_gelu_tanh", ctx, x, weight, bias, out);
  if (ctx.device().is_cuda()) {
    check_cuda_gemm_dtypes("linear_gelu_tanh", x, weight, bias, out);
    return cuda::linear_gelu_tanh(ctx, x, weight, bias, out);
  }
  cpu::linear_gelu_tanh(x, weight, bias, out);
}

void matmul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool transpose_b) {
  const ProfileScope profile(ctx, "matmul");
  check_devices("matmul", ctx, {&a, &b, &out});
  check_floating("matmul", {&a, &b, &out});
  WB_CHECK((a.ndim() == 2 || a.ndim() == 3) && (b.ndim() == 2 || b.ndim() == 3),
           "matmul: operands must be 2-D or 3-D, got ", a.describe(), " and ", b.describe());
  const int64_t batch = a.ndim() == 3 ? a.dim(0) : 1;
  WB_CHECK(b.ndim() == 2 || b.dim(0) == batch, "matmul: batch sizes differ: ", a.describe(),
           " and ", b.describe());
  const int64_t k = a.dim(-1);
  const int64_t kb = transpose_b ? b.dim(-1) : b.dim(-2);
  const int64_t n = transpose_b ? b.dim(-2) : b.dim(-1);
  WB_CHECK(k == kb, "matmul: inner dimensions differ: ", a.describe(), " and ", b.describe(),
           transpose_b ? " (b transposed)" : "");
  Shape expected = a.ndim() == 3 ? Shape{batch, a.dim(1), n} : Shape{a.dim(0), n};
  WB_CHECK(out.shape() == expected, "matmul: output ", out.describe(), ", expected ",
           shape_str(expected));
  if (ctx.device().is_cuda()) {
    check_cuda_gemm_dtypes("matmul", a, b, Tensor(), out);
    return cuda::matmul(ctx, a, b, out, transpose_b);
  }
  cpu::matmul(a, b, out, transpose_b);
}

void layer_norm(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                float eps, Tensor& out) {
  const ProfileScope profile(ctx, "layer_norm");
  check_devices("layer_norm", ctx, {&x, &weight, &bias, &out});
  check_floating("layer_norm", {&x, &weight, &bias, &out});
  check_same_shape("layer_norm", x, out);
  for (const Tensor* p : {&weight, &bias}) {
    WB_CHECK(!p->defined() || (p->ndim() == 1 && p->dim(0) == x.dim(-1)), "layer_norm: parameter ",
             p->describe(), " does not match the last dimension of ", x.describe());
  }
  if (ctx.device().is_cuda()) return cuda::layer_norm(ctx, x, weight, bias, eps, out);
  cpu::layer_norm(x, weight, bias, eps, out);
}

void rms_norm(const Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const ProfileScope profile(ctx, "rms_norm");
  check_devices("rms_norm", ctx, {&x, &weight, &out});
  check_floating("rms_norm", {&x, &weight, &out});
  check_same_shape("rms_norm", x, out);
  WB_CHECK(!weight.defined() || (weight.ndim() == 1 && weight.dim(0) == x.dim(-1)),
           "rms_norm: weight ", weight.describe(), " does not match ", x.describe());
  if (ctx.device().is_cuda()) return cuda::rms_norm(ctx, x, weight, eps, out);
  cpu::rms_norm(x, weight, eps, out);
}

void gelu_tanh(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "gelu_tanh");
  check_devices("gelu_tanh", ctx, {&x, &out});
  check_floating("gelu_tanh", {&x, &out});
  check_same_shape("gelu_tanh", x, out);
  if (ctx.device().is_cuda()) return cuda::gelu_tanh(ctx, x, out);
  cpu::gelu_tanh(x, out);
}

void gelu_erf(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "gelu_erf");
  check_devices("gelu_erf", ctx, {&x, &out});
  check_floating("gelu_erf", {&x, &out});
  check_same_shape("gelu_erf", x, out);
  if (ctx.device().is_cuda()) return cuda::gelu_erf(ctx, x, out);
  cpu::gelu_erf(x, out);
}

void permute(const Context& ctx, const Tensor& x, const std::vector<int>& perm, Tensor& out) {
  const ProfileScope profile(ctx, "permute");
  check_devices("permute", ctx, {&x, &out});
  WB_CHECK(x.dtype() == out.dtype(), "permute: dtypes differ: ", x.describe(), " and ",
           out.describe());
  const int n = x.ndim();
  WB_CHECK(n <= 8 && static_cast<int>(perm.size()) == n, "permute: ", perm.size(), " axes for ",
           x.describe());
  std::vector<bool> seen(n, false);
  Shape expected(n);
  for (int d = 0; d < n; ++d) {
    WB_CHECK(perm[d] >= 0 && perm[d] < n && !seen[perm[d]], "permute: axes are not a permutation");
    seen[perm[d]] = true;
    expected[d] = x.dim(perm[d]);
  }
  WB_CHECK(out.shape() == expected, "permute: output ", out.describe(), ", expected ",
           shape_str(expected));
  if (ctx.device().is_cuda()) return cuda::permute(ctx, x, perm, out);
  cpu::permute(x, perm, out);
}

void sinusoidal_embedding(const Context& ctx, const Tensor& timesteps, Tensor& out) {
  const ProfileScope profile(ctx, "sinusoidal_embedding");
  check_devices("sinusoidal_embedding", ctx, {&timesteps, &out});
  check_floating("sinusoidal_embedding", {&timesteps, &out});
  WB_CHECK(timesteps.ndim() == 1 && out.ndim() == 2 && out.dim(0) == timesteps.dim(0) &&
               out.dim(1) % 2 == 0,
           "sinusoidal_embedding: timesteps ", timesteps.describe(), " and output ", out.describe(),
           " do not fit ([T] and [T, even dim])");
  if (ctx.device().is_cuda()) return cuda::sinusoidal_embedding(ctx, timesteps, out);
  cpu::sinusoidal_embedding(timesteps, out);
}

void silu(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "silu");
  check_devices("silu", ctx, {&x, &out});
  check_floating("silu", {&x, &out});
  check_same_shape("silu", x, out);
  if (ctx.device().is_cuda()) return cuda::silu(ctx, x, out);
  cpu::silu(x, out);
}

void softmax(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "softmax");
  check_devices("softmax", ctx, {&x, &out});
  check_floating("softmax", {&x, &out});
  check_same_shape("softmax", x, out);
  if (ctx.device().is_cuda()) return cuda::softmax(ctx, x, out);
  cpu::softmax(x, out);
}

void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  const ProfileScope profile(ctx, "add");
  check_devices("add", ctx, {&a, &b, &out});
  check_floating("add", {&a, &b, &out});
  check_trailing("add", a, b);
  check_same_shape("add", a, out);
  if (ctx.device().is_cuda()) return cuda::add(ctx, a, b, out);
  cpu::add(a, b, out);
}

void mul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  const ProfileScope profile(ctx, "mul");
  check_devices("mul", ctx, {&a, &b, &out});
  check_floating("mul", {&a, &b, &out});
  check_trailing("mul", a, b);
  check_same_shape("mul", a, out);
  if (ctx.device().is_cuda()) return cuda::mul(ctx, a, b, out);
  cpu::mul(a, b, out);
}

void scale(const Context& ctx, const Tensor& x, float factor, Tensor& out) {
  const ProfileScope profile(ctx, "scale");
  check_devices("scale", ctx, {&x, &out});
  check_floating("scale", {&x, &out});
  check_same_shape("scale", x, out);
  if (ctx.device().is_cuda()) return cuda::scale(ctx, x, factor, out);
  cpu::scale(x, factor, out);
}

void linear_combination(const Context& ctx, const std::vector<double>& coefficients,
                        const std::vector<const Tensor*>& inputs, Tensor& out) {
  const ProfileScope profile(ctx, "linear_combination");
  WB_CHECK(!inputs.empty() && coefficients.size() == inputs.size(),
           "linear_combination: ", coefficients.size(), " coefficients for ", inputs.size(),
           " inputs");
  check_devices("linear_combination", ctx, {&out});
  check_floating("linear_combination", {&out});
  for (const Tensor* x : inputs) {
    check_devices("linear_combination", ctx, {x});
    check_floating("linear_combination", {x});
    check_same_shape("linear_combination", *x, out);
  }
  if (ctx.device().is_cuda()) return cuda::linear_combination(ctx, coefficients, inputs, out);
  cpu::linear_combination(coefficients, inputs, out);
}

void layernorm_modulate(const Context& ctx, const Tensor& x, const Tensor& shift,
                        const Tensor& scale, float eps, Tensor& out) {
  const ProfileScope profile(ctx, "layernorm_modulate");
  check_devices("layernorm_modulate", ctx, {&x, &shift, &scale, &out});
  check_floating("layernorm_modulate", {&x, &shift, &scale, &out});
  WB_CHECK(x.ndim() == 2, "layernorm_modulate: x must be [L, D], got ", x.describe());
  check_same_shape("layernorm_modulate", x, out);
  check_modulation("layernorm_modulate", "shift", x, shift);
  check_modulation("layernorm_modulate", "scale", x, scale);
  if (ctx.device().is_cuda()) return cuda::layernorm_modulate(ctx, x, shift, scale, eps, out);
  cpu::layernorm_modulate(x, shift, scale, eps, out);
}

void gated_residual(const Context& ctx, const Tensor& x, const Tensor& y, const Tensor& gate,
                    Tensor& out) {
  const ProfileScope profile(ctx, "gated_residual");
  check_devices("gated_residual", ctx, {&x, &y, &gate, &out});
  check_floating("gated_residual", {&x, &y, &gate, &out});
  WB_CHECK(x.ndim() == 2, "gated_residual: x must be [L, D], got ", x.describe());
  check_same_shape("gated_residual", x, y);
  check_same_shape("gated_residual", x, out);
  check_modulation("gated_residual", "gate", x, gate);
  if (ctx.device().is_cuda()) return cuda::gated_residual(ctx, x, y, gate, out);
  cpu::gated_residual(x, y, gate, out);
}

namespace {

// The checks both residual-then-norm fusions share: x [L, D] f32, y like x, the gate a modulation
// row (or undefined), out like x and apart from x and y (it is written while they are read).
void check_residual_norm(const char* op, const Context& ctx, const Tensor& x, const Tensor& y,
                         const Tensor& gate, const Tensor& out) {
  check_devices(op, ctx, {&x, &y, &gate, &out});
  check_floating(op, {&x, &y, &gate, &out});
  WB_CHECK(x.ndim() == 2, op, ": x must be [L, D], got ", x.describe());
  WB_CHECK(x.dtype() == DType::F32, op, ": x is the residual stream and must be f32, got ",
           x.describe());
  check_same_shape(op, x, y);
  check_same_shape(op, x, out);
  if (gate.defined()) check_modulation(op, "gate", x, gate);
  auto overlap = [](const Tensor& a, const Tensor& b) {
    const auto* a0 = static_cast<const char*>(a.raw());
    const auto* b0 = static_cast<const char*>(b.raw());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
  };
  WB_CHECK(!overlap(out, x) && !overlap(out, y), op, ": out ", out.describe(),
           " overlaps its inputs");
}

// x ← x + y · gate, or x + y: the first half of the fusions, on the CPU.
void cpu_residual(Tensor& x, const Tensor& y, const Tensor& gate) {
  if (gate.defined()) {
    cpu::gated_residual(x, y, gate, x);
  } else {
    cpu::add(x, y, x);
  }
}

}  // namespace

void residual_layernorm_modulate(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                                 const Tensor& shift, const Tensor& scale, float eps, Tensor& out) {
  const char* op = "residual_layernorm_modulate";
  const ProfileScope profile(ctx, op);
  check_residual_norm(op, ctx, x, y, gate, out);
  check_devices(op, ctx, {&shift, &scale});
  check_floating(op, {&shift, &scale});
  check_modulation(op, "shift", x, shift);
  check_modulation(op, "scale", x, scale);
  if (ctx.device().is_cuda()) {
    return cuda::residual_layernorm_modulate(ctx, x, y, gate, shift, scale, eps, out);
  }
  cpu_residual(x, y, gate);
  cpu::layernorm_modulate(x, shift, scale, eps, out);
}

void residual_layer_norm(const Context& ctx, Tensor& x, const Tensor& y, const Tensor& gate,
                         const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  const char* op = "residual_layer_norm";
  const ProfileScope profile(ctx, op);
  check_residual_norm(op, ctx, x, y, gate, out);
  check_devices(op, ctx, {&weight, &bias});
  check_floating(op, {&weight, &bias});
  for (const Tensor* p : {&weight, &bias}) {
    WB_CHECK(!p->defined() || (p->ndim() == 1 && p->dim(0) == x.dim(1)), op, ": parameter ",
             p->describe(), " does not match the last dimension of ", x.describe());
  }
  if (ctx.device().is_cuda()) {
    return cuda::residual_layer_norm(ctx, x, y, gate, weight, bias, eps, out);
  }
  cpu_residual(x, y, gate);
  cpu::layer_norm(x, weight, bias, eps, out);
}

void attention(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const AttentionOptions& options) {
  const ProfileScope profile(ctx, "attention");
  check_devices("attention", ctx, {&q, &k, &v, &out, &options.bias});
  check_floating("attention", {&q, &k, &v, &out, &options.bias});
  WB_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4 && out.ndim() == 4,
           "attention: q, k, v and out must be [B, L, H, D]");
  const int64_t batch = q.dim(0), lq = q.dim(1), heads = q.dim(2), lk = k.dim(1);
  WB_CHECK(k.dim(0) == batch && v.dim(0) == batch && k.dim(2) == heads && v.dim(2) == heads &&
               k.dim(3) == q.dim(3) && v.dim(1) == lk,
           "attention: q ", q.describe(), ", k ", k.describe(), " and v ", v.describe(),
           " do not fit together");
  const Shape expected{batch, lq, heads, v.dim(3)};
  WB_CHECK(out.shape() == expected, "attention: output ", out.describe(), ", expected ",
           shape_str(expected));
  WB_CHECK(options.k_lens.empty() || static_cast<int64_t>(options.k_lens.size()) == batch,
           "attention: ", options.k_lens.size(), " key lengths for a batch of ", batch);
  for (int64_t len : options.k_lens) {
    WB_CHECK(len >= 0 && len <= lk, "attention: key length ", len, " outside [0, ", lk, "]");
  }
  const Shape bias_shape{heads, lq, lk};
  WB_CHECK(!options.bias.defined() || options.bias.shape() == bias_shape, "attention: bias ",
           options.bias.describe(), ", expected ", shape_str(bias_shape));
  // CUDA: cuDNN flash attention for bf16/f16 without bias, the fallback kernel otherwise
  // (WANBATCH_ATTENTION=fallback forces it); see core/cuda/ops.h.
  if (ctx.device().is_cuda()) return cuda::attention(ctx, q, k, v, out, options);
  cpu::attention(q, k, v, out, options);
}

void rope_3d(const Context& ctx, const Tensor& x, const RopeGrid& grid, int64_t token_offset,
             Tensor& out) {
  const ProfileScope profile(ctx, "rope_3d");
  check_devices("rope_3d", ctx, {&x, &out});
  check_floating("rope_3d", {&x, &out});
  WB_CHECK(x.ndim() == 3 && x.dim(2) % 2 == 0, "rope_3d: x must be [L, H, D] with even D, got ",
           x.describe());
  check_same_shape("rope_3d", x, out);
  WB_CHECK(grid.frames > 0 && grid.height > 0 && grid.width > 0 && token_offset >= 0,
           "rope_3d: bad grid ", grid.frames, "x", grid.height, "x", grid.width, " or offset ",
           token_offset);
  constexpr int64_t kMaxPosition = 1024;  // the reference's frequency table length
  WB_CHECK(grid.frames <= kMaxPosition && grid.height <= kMaxPosition && grid.width <= kMaxPosition,
           "rope_3d: grid ", grid.frames, "x", grid.height, "x", grid.width,
           " exceeds the 1024 positions of the RoPE table");
  if (ctx.device().is_cuda()) return cuda::rope_3d(ctx, x, grid, token_offset, out);
  cpu::rope_3d(x, grid, token_offset, out);
}

void rms_norm_rope(const Context& ctx, const Tensor& x, const Tensor& weight, float eps,
                   const RopeGrid& grid, int64_t token_offset, Tensor& out) {
  const ProfileScope profile(ctx, "rms_norm_rope");
  check_devices("rms_norm_rope", ctx, {&x, &weight, &out});
  check_floating("rms_norm_rope", {&x, &weight, &out});
  WB_CHECK(x.ndim() == 3 && x.dim(2) % 2 == 0,
           "rms_norm_rope: x must be [L, H, D] with even D, got ", x.describe());
  check_same_shape("rms_norm_rope", x, out);
  WB_CHECK(!weight.defined() || (weight.ndim() == 1 && weight.dim(0) == x.dim(1) * x.dim(2)),
           "rms_norm_rope: weight ", weight.describe(), " must be [H·D] for ", x.describe());
  WB_CHECK(grid.frames > 0 && grid.height > 0 && grid.width > 0 && token_offset >= 0,
           "rms_norm_rope: bad grid ", grid.frames, "x", grid.height, "x", grid.width,
           " or offset ", token_offset);
  constexpr int64_t kMaxPosition = 1024;  // the reference's frequency table length
  WB_CHECK(grid.frames <= kMaxPosition && grid.height <= kMaxPosition && grid.width <= kMaxPosition,
           "rms_norm_rope: grid ", grid.frames, "x", grid.height, "x", grid.width,
           " exceeds the 1024 positions of the RoPE table");
  if (ctx.device().is_cuda())
    return cuda::rms_norm_rope(ctx, x, weight, eps, grid, token_offset, out);
  cpu::rms_norm_rope(x, weight, eps, grid, token_offset, out);
}

void rms_norm_channels(const Context& ctx, const Tensor& x, const Tensor& gamma, const Tensor& bias,
                       Tensor& out) {
  const ProfileScope profile(ctx, "rms_norm_channels");
  check_devices("rms_norm_channels", ctx, {&x, &gamma, &bias, &out});
  check_floating("rms_norm_channels", {&x, &gamma, &bias, &out});
  WB_CHECK(x.ndim() >= 1, "rms_norm_channels: x must be [C, ...], got ", x.describe());
  check_same_shape("rms_norm_channels", x, out);
  WB_CHECK(gamma.defined(), "rms_norm_channels: gamma is undefined");
  check_channel_vector("rms_norm_channels", "gamma", x, gamma);
  if (bias.defined()) check_channel_vector("rms_norm_channels", "bias", x, bias);
  if (ctx.device().is_cuda()) return cuda::rms_norm_channels(ctx, x, gamma, bias, out);
  cpu::rms_norm_channels(x, gamma, bias, out);
}

void channel_affine(const Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift,
                    Tensor& out) {
  const ProfileScope profile(ctx, "channel_affine");
  check_devices("channel_affine", ctx, {&x, &scale, &shift, &out});
  check_floating("channel_affine", {&x, &scale, &shift, &out});
  WB_CHECK(x.ndim() >= 1, "channel_affine: x must be [C, ...], got ", x.describe());
  check_same_shape("channel_affine", x, out);
  WB_CHECK(scale.defined() && shift.defined(), "channel_affine: scale and shift are required");
  check_channel_vector("channel_affine", "scale", x, scale);
  check_channel_vector("channel_affine", "shift", x, shift);
  if (ctx.device().is_cuda()) return cuda::channel_affine(ctx, x, scale, shift, out);
  cpu::channel_affine(x, scale, shift, out);
}

void clamp(const Context& ctx, const Tensor& x, float lo, float hi, Tensor& out) {
  const ProfileScope profile(ctx, "clamp");
  check_devices("clamp", ctx, {&x, &out});
  check_floating("clamp", {&x, &out});
  check_same_shape("clamp", x, out);
  WB_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  if (ctx.device().is_cuda()) return cuda::clamp(ctx, x, lo, hi, out);
  cpu::clamp(x, lo, hi, out);
}

void copy_slice(const Context& ctx, const Tensor& src, int dim, int64_t src_begin, Tensor& dst,
                int64_t dst_begin, int64_t count) {
  const ProfileScope profile(ctx, "copy_slice");
  check_devices("copy_slice", ctx, {&src, &dst});
  WB_CHECK(src.dtype() == dst.dtype(), "copy_slice: dtypes differ: ", src.describe(), " and ",
           dst.describe());
  WB_CHECK(src.ndim() == dst.ndim(), "copy_slice: ", src.describe(), " and ", dst.describe(),
           " differ in rank");
  const int d = checked_dim("copy_slice", src, dim);
  for (int i = 0; i < src.ndim(); ++i) {
    WB_CHECK(i == d || src.dim(i) == dst.dim(i), "copy_slice: ", src.describe(), " and ",
             dst.describe(), " differ outside dimension ", d);
  }
  WB_CHECK(count >= 0 && src_begin >= 0 && dst_begin >= 0 && src_begin + count <= src.dim(d) &&
               dst_begin + count <= dst.dim(d),
           "copy_slice: ", count, " entries from ", src_begin, " of ", src.describe(), " to ",
           dst_begin, " of ", dst.describe(), " along dimension ", d, " run past the end");
  if (ctx.device().is_cuda())
    return cuda::copy_slice(ctx, src, d, src_begin, dst, dst_begin, count);
  cpu::copy_slice(src, d, src_begin, dst, dst_begin, count);
}

void repeat_interleave(const Context& ctx, const Tensor& x, int dim, Tensor& out) {
  const ProfileScope profile(ctx, "repeat_interleave");
  check_devices("repeat_interleave", ctx, {&x, &out});
  WB_CHECK(x.dtype() == out.dtype(), "repeat_interleave: dtypes differ: ", x.describe(), " and ",
           out.describe());
  WB_CHECK(x.ndim() == out.ndim(), "repeat_interleave: ", x.describe(), " and ", out.describe(),
           " differ in rank");
  const int d = checked_dim("repeat_interleave", x, dim);
  bool ok = x.dim(d) > 0 && out.dim(d) % x.dim(d) == 0;
  for (int i = 0; i < x.ndim(); ++i) ok = ok && (i == d || x.dim(i) == out.dim(i));
  WB_CHECK(ok, "repeat_interleave: output ", out.describe(), " is not ", x.describe(),
           " repeated along dimension ", d);
  if (ctx.device().is_cuda()) return cuda::repeat_interleave(ctx, x, d, out);
  cpu::repeat_interleave(x, d, out);
}

void mean_dim(const Context& ctx, const Tensor& x, int dim, Tensor& out) {
  const ProfileScope profile(ctx, "mean_dim");
  check_devices("mean_dim", ctx, {&x, &out});
  check_floating("mean_dim", {&x, &out});
  const int d = checked_dim("mean_dim", x, dim);
  Shape expected = x.shape();
  expected.erase(expected.begin() + d);
  WB_CHECK(out.shape() == expected, "mean_dim: output ", out.describe(), ", expected ",
           shape_str(expected));
  WB_CHECK(x.dim(d) > 0, "mean_dim: mean over an empty dimension of ", x.describe());
  if (ctx.device().is_cuda()) return cuda::mean_dim(ctx, x, d, out);
  cpu::mean_dim(x, d, out);
}

void upsample_nearest_2x(const Context& ctx, const Tensor& x, Tensor& out) {
  const ProfileScope profile(ctx, "upsample_nearest_2x");
  check_devices("upsample_nearest_2x", ctx, {&x, &out});
  check_floating("upsample_nearest_2x", {&x, &out});
  WB_CHECK(x.ndim() >= 2, "upsample_nearest_2x: x must have at least 2 dimensions, got ",
           x.describe());
  Shape expected = x.shape();
  expected[expected.size() - 2] *= 2;
  expected.back() *= 2;
  WB_CHECK(out.shape() == expected, "upsample_nearest_2x: output ", out.describe(), ", expected ",
           shape_str(expected));
  if (ctx.device().is_cuda()) return cuda::upsample_nearest_2x(ctx, x, out);
  cpu::upsample_nearest_2x(x, out);
}

Shape conv3d_output_shape(const Shape& x, const Shape& weight, const Conv3dParams& params) {
  WB_CHECK((x.size() == 4 || x.size() == 5) && weight.size() == 5, "conv3d: input ", shape_str(x),
           " must be [(N,) C, T, H, W] and weight ", shape_str(weight), " [O, C, kt, kh, kw]");
  const size_t base = x.size() - 4;
  WB_CHECK(x[base] == weight[1], "conv3d: input has ", x[base], " channels, weight ",
           shape_str(weight), " expects ", weight[1]);
  Shape out(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(base));
  out.push_back(weight[0]);
  for (int d = 0; d < 3; ++d) {
    const int64_t padded = x[base + 1 + d] + params.padding[2 * d] + params.padding[2 * d + 1];
    WB_CHECK(params.stride[d] > 0, "conv3d: stride must be positive");
    WB_CHECK(padded >= weight[2 + d], "conv3d: input ", shape_str(x), " is smaller than kernel ",
             shape_str(weight), " after padding");
    out.push_back((padded - weight[2 + d]) / params.stride[d] + 1);
  }
  return out;
}

void conv3d(const Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
            const Conv3dParams& params, Tensor& out) {
  const ProfileScope profile(ctx, "conv3d");
  check_devices("conv3d", ctx, {&x, &weight, &bias, &out});
  check_floating("conv3d", {&x, &weight, &bias, &out});
  for (int64_t p : params.padding) WB_CHECK(p >= 0, "conv3d: negative padding");
  const Shape expected = conv3d_output_shape(x.shape(), weight.shape(), params);
  WB_CHECK(out.shape() == expected, "conv3d: output ", out.describe(), ", expected ",
           shape_str(expected));
  WB_CHECK(!bias.defined() || (bias.ndim() == 1 && bias.dim(0) == weight.dim(0)), "conv3d: bias ",
           bias.describe(), " does not match weight ", weight.describe());
  if (ctx.device().is_cuda()) return cuda::conv3d(ctx, x, weight, bias, params, out);
  cpu::conv3d(x, weight, bias, params, out);
}

}  // namespace wanbatch::core::ops
