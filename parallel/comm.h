// Comm: a communicator over tensors, the one interface the parallel code (Ulysses all-to-all,
// weight all-gather, data-parallel bookkeeping) talks to. The MPI backend here moves host
// tensors; an NCCL backend for device tensors comes later behind the same interface.
//
// Every collective is called by every rank of the communicator with matching arguments. Before any
// data moves, the ranks exchange a small description of their arguments (shapes, dtypes, counts),
// so a mismatch throws the same wanbatch::Error on every rank instead of hanging or corrupting
// memory. Tensors of any dtype move as bytes; all_reduce_sum adds in the dtype (bf16, f16 and fp8
// through fp32).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace wanbatch::parallel {

class MpiRuntime;

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  virtual void barrier() = 0;
  // Root's `tensor` overwrites everyone's; every rank passes a tensor of root's shape and dtype.
  virtual void broadcast(core::Tensor& tensor, int root) = 0;
  // out = the ranks' `in` concatenated along dim 0 in rank order: [size·n, ...]. Every rank passes
  // the same shape. `out` is allocated when undefined, else must have exactly that shape and dtype.
  virtual void all_gather(const core::Tensor& in, core::Tensor& out) = 0;
  // all_gather in two halves, so that the transfer overlaps the ops queued between them (the
  // weight prefetch of sharded models): start queues it after the ops queued so far and returns;
  // join makes the ops queued after it wait for the result. `slot` (0 or 1) names one of two
  // gathers that may be in flight at once; the tensors must live until joined. Backends that
  // cannot overlap (MPI, on host tensors) gather in start.
  virtual void all_gather_start(const core::Tensor& in, core::Tensor& out, int slot) {
    (void)slot;
    all_gather(in, out);
  }
  virtual void all_gather_join(int slot) { (void)slot; }
  // Equal splits along dim 0: rank r sends rows [j·n/size, (j+1)·n/size) of `in` to rank j and
  // receives rank j's block r into the same place of `out` (same shape as `in`).
  virtual void all_to_all(const core::Tensor& in, core::Tensor& out) = 0;
  // Unequal splits, counted in rows of dim 0: send_counts[j] rows (consecutive, in rank order)
  // go to rank j; recv_counts[j] rows come from rank j, placed in rank order. Rank i's
  // send_counts[j] must equal rank j's recv_counts[i]; zero counts are allowed. `out` has
  // sum(recv_counts) rows and `in`'s trailing shape (allocated when undefined).
  virtual void all_to_all_v(const core::Tensor& in, const std::vector<int64_t>& send_counts,
                            core::Tensor& out, const std::vector<int64_t>& recv_counts) = 0;
  // all_to_all in two halves, as all_gather_start / all_gather_join, so that the exchange
  // overlaps the ops queued between them (Ulysses: q's and v's exchanges overlap the projections
  // after them). `slot` (0 to kAllToAllSlots - 1, apart from all_gather's slots) names one of the
  // exchanges that may be in flight at once; until joined, the tensors must live, `in` must not
  // change and `out` must not be read. Backends that cannot overlap (MPI) exchange in start.
  static constexpr int kAllToAllSlots = 3;
  virtual void all_to_all_start(const core::Tensor& in, core::Tensor& out, int slot) {
    check_all_to_all_slot("all_to_all_start", slot);
    all_to_all(in, out);
  }
  virtual void all_to_all_join(int slot) { check_all_to_all_slot("all_to_all_join", slot); }
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void all_reduce_sum(core::Tensor& tensor) = 0;

  // Ranks passing the same `color` (>= 0) form a sub-communicator, ordered by `key` (then by rank
  // here). Collective over this communicator.
  virtual std::unique_ptr<Comm> split(int color, int key) const = 0;

  // Logs `message` as an error naming the rank, then ends every rank of the job (MPI_Abort).
  // For failures one rank cannot report through a collective (the others would wait forever).
  [[noreturn]] virtual void abort(const std::string& message) const = 0;

 protected:
  static void check_all_to_all_slot(const char* op, int slot) {
    WB_CHECK(slot >= 0 && slot < kAllToAllSlots, op, ": slot ", slot, " (0 to ", kAllToAllSlots - 1,
             ")");
  }
};

// The communicator of every rank of the job: an MPI communicator (a duplicate of MPI_COMM_WORLD
// with MPI_ERRORS_RETURN) when `runtime` is active, otherwise a one-rank communicator that needs
// no MPI. It must be destroyed before `runtime`.
std::unique_ptr<Comm> world(const MpiRuntime& runtime);

}  // namespace wanbatch::parallel
