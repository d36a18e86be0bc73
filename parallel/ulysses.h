// Ulysses sequence parallelism (DESIGN.md "Parallelism"): the ranks of an sp group each hold
// L/N consecutive tokens of a sequence padded to N·(L/N). Attention needs every token, so q, k and
// v go through an all-to-all from sequence-sharded [B, L/N, H, D] to head-sharded [B, L, H/N, D]
// (each rank then attends over the whole sequence for its H/N heads) and the result comes back the
// same way. The layout work is core::ops::permute, the exchange Comm::all_to_all, so the same code
// serves host tensors over MPI and device tensors over NCCL.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "parallel/comm.h"

namespace wanbatch::parallel {

// Two scratch buffers of (at least) the local tensor's element count and dtype, planned once by the
// caller so no step allocates.
struct UlyssesScratch {
  core::Tensor send, recv;
};

// local [B, Ll, H, D] (this rank's tokens, all heads) → out [B, N·Ll, H/N, D] (every rank's tokens
// in rank order, this rank's heads: rank r holds heads [r·H/N, (r+1)·H/N)).
void sequence_to_heads(const core::Context& ctx, Comm& comm, const core::Tensor& local,
                       UlyssesScratch& scratch, core::Tensor& out);

// The inverse: in [B, N·Ll, H/N, D] → out [B, Ll, H, D].
void heads_to_sequence(const core::Context& ctx, Comm& comm, const core::Tensor& in,
                       UlyssesScratch& scratch, core::Tensor& out);

// Every rank's rows of a sequence-sharded local [B, Ll, P] gathered to out [B, N·Ll, P] on every
// rank (the DiT's output tokens).
void gather_sequence(const core::Context& ctx, Comm& comm, const core::Tensor& local,
                     UlyssesScratch& scratch, core::Tensor& out);

}  // namespace wanbatch::parallel
