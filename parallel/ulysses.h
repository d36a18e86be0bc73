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
  core::Shape in_flight;  // sequence_to_heads_start's [N, B, Ll, H/N, D] until finished
};

// local [B, Ll, H, D] (this rank's tokens, all heads) → out [B, N·Ll, H/N, D] (every rank's tokens
// in rank order, this rank's heads: rank r holds heads [r·H/N, (r+1)·H/N)), in two halves so that
// the exchange overlaps the ops queued between them (Comm::all_to_all_start). Start permutes
// `local` into scratch.send and starts the exchange into scratch.recv in `slot`; finish joins it
// and permutes scratch.recv into `out`. Every exchange in flight needs its own slot and scratch,
// which must be left alone until finished. scratch.recv may be `local`'s own storage: `local` is
// read (into scratch.send) before the exchange overwrites it.
void sequence_to_heads_start(const core::Context& ctx, Comm& comm, const core::Tensor& local,
                             UlyssesScratch& scratch, int slot);
void sequence_to_heads_finish(const core::Context& ctx, Comm& comm, UlyssesScratch& scratch,
                              int slot, core::Tensor& out);

// The inverse: in [B, N·Ll, H/N, D] → out [B, Ll, H, D].
void heads_to_sequence(const core::Context& ctx, Comm& comm, const core::Tensor& in,
                       UlyssesScratch& scratch, core::Tensor& out);

// Every rank's rows of a sequence-sharded local [B, Ll, P] gathered to out [B, N·Ll, P] on every
// rank (the DiT's output tokens).
void gather_sequence(const core::Context& ctx, Comm& comm, const core::Tensor& local,
                     UlyssesScratch& scratch, core::Tensor& out);

}  // namespace wanbatch::parallel
