// The two CUDA attention paths behind cuda::attention (core/cuda/ops.h), private to the CUDA
// backend and its tests: cuDNN's fused flash attention (attention_cudnn.cpp), and the plain
// flash-style kernel that takes every case up to head dim 256 (attention.cu), and GEMMs beyond it
// (attention_by_gemm.cpp). Arguments are already checked by
// core::ops::attention.
#pragma once

#include <cstdint>

#include "core/context.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace wanbatch::core::cuda {

// Queues attention through a cached cuDNN execution plan and returns true, or returns false with
// nothing queued when cuDNN does not take this case (dtype, head dim, bias, alignment, or a plan
// cuDNN refused to build: logged once per shape).
bool attention_cudnn(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                     Tensor& out, const ops::AttentionOptions& options);

// The fallback kernel: f32, bf16 or f16 inputs (q, k and v of one dtype), any head dims ≤ 256,
// key lengths, additive bias, fp32 accumulation; out f32, bf16 or f16.
void attention_fallback(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        Tensor& out, const ops::AttentionOptions& options);

// Head dims beyond the kernel's 256 (the VAEs' single-head attention over 384 or 640 channels):
// for each batch entry and head, the scores q·kᵀ in fp32 through cuBLASLt, scaled, softmax, then
// · v. Needs Lq × Lk fp32 of scratch (one head at a time); key lengths are honoured, a bias is not
// taken (no such case exists).
void attention_by_gemm(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                       Tensor& out, const ops::AttentionOptions& options);

// For tests and diagnostics: whether cuDNN builds (or has cached) a plan for this case, building
// it if needed. `masked` is whether per-batch key lengths are given.
bool cudnn_attention_plan_available(const Context& ctx, int64_t batch, int64_t heads, int64_t lq,
                                    int64_t lk, int64_t head_dim, DType dtype, bool masked);

}  // namespace wanbatch::core::cuda
