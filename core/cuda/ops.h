// Entry points of the CUDA kernels behind core::ops, for the ops that have one so far. core/ops.cpp
// validates arguments and dispatches here for CUDA tensors; an op not listed here has no CUDA
// kernel yet and core/ops.cpp says so. Without CUDA, core/cuda_ops_disabled.cpp throws.
#pragma once

#include "core/ops.h"

namespace wanbatch::core::cuda {

void cast(const Context& ctx, const Tensor& x, Tensor& out);
void fill(const Context& ctx, Tensor& out, float value);
void add(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void scale(const Context& ctx, const Tensor& x, float factor, Tensor& out);
void gelu_tanh(const Context& ctx, const Tensor& x, Tensor& out);
void silu(const Context& ctx, const Tensor& x, Tensor& out);

}  // namespace wanbatch::core::cuda
