#include "parallel/ulysses.h"

#include "core/error.h"
#include "core/ops.h"
#include "core/profiler.h"

namespace wanbatch::parallel {
namespace {

namespace ops = core::ops;
using core::Shape;
using core::Tensor;

// The first numel elements of a scratch buffer, shaped.
Tensor view(const Tensor& buffer, const Shape& shape, const Tensor& like) {
  WB_CHECK(buffer.defined() && buffer.dtype() == like.dtype() &&
               buffer.numel() >= core::shape_numel(shape),
           "Ulysses: scratch ", buffer.defined() ? buffer.describe() : std::string("(none)"),
           " cannot hold ", core::shape_str(shape), " ", core::dtype_name(like.dtype()));
  return buffer.reshape({buffer.numel()}).slice(0, core::shape_numel(shape)).reshape(shape);
}

}  // namespace

void sequence_to_heads_start(const core::Context& ctx, Comm& comm, const Tensor& local,
                             UlyssesScratch& scratch, int slot) {
  const int64_t n = comm.size();
  WB_CHECK(local.ndim() == 4 && local.dim(2) % n == 0, "Ulysses: ", local.describe(),
           " is not [B, L, H, D] with H divisible by ", n);
  const int64_t b = local.dim(0), l = local.dim(1), h = local.dim(2) / n, d = local.dim(3);
  // [B, Ll, N, H/N, D] → [N, B, Ll, H/N, D]: the block for rank j (its heads) is contiguous.
  Tensor send = view(scratch.send, {n, b, l, h, d}, local);
  ops::permute(ctx, local.reshape({b, l, n, h, d}), {2, 0, 1, 3, 4}, send);
  Tensor recv = view(scratch.recv, {n, b, l, h, d}, local);
  const core::ProfileScope profile(ctx, "all_to_all");
  comm.all_to_all_start(send, recv, slot);
  scratch.in_flight = send.shape();
}

void sequence_to_heads_finish(const core::Context& ctx, Comm& comm, UlyssesScratch& scratch,
                              int slot, Tensor& out) {
  const Shape shape = scratch.in_flight;  // [N, B, Ll, H/N, D]
  WB_CHECK(shape.size() == 5, "Ulysses: no exchange started in slot ", slot);
  const int64_t n = shape[0], b = shape[1], l = shape[2], h = shape[3], d = shape[4];
  const Shape out_shape{b, n * l, h, d};
  WB_CHECK(out.shape() == out_shape, "Ulysses: output ", out.describe(), ", expected ",
           core::shape_str(out_shape));
  scratch.in_flight.clear();
  {
    // Under a profiler: the wait the overlap did not hide.
    const core::ProfileScope profile(ctx, "all_to_all");
    comm.all_to_all_join(slot);
  }
  // recv is [N (source rank = token block), B, Ll, H/N, D] → [B, N·Ll, H/N, D].
  Tensor recv = view(scratch.recv, {n, b, l, h, d}, out);
  Tensor out5 = out.reshape({b, n, l, h, d});
  ops::permute(ctx, recv, {1, 0, 2, 3, 4}, out5);
}

void heads_to_sequence(const core::Context& ctx, Comm& comm, const Tensor& in,
                       UlyssesScratch& scratch, Tensor& out) {
  const int64_t n = comm.size();
  WB_CHECK(in.ndim() == 4 && in.dim(1) % n == 0, "Ulysses: ", in.describe(),
           " is not [B, N·L, H/N, D] for N = ", n);
  const int64_t b = in.dim(0), l = in.dim(1) / n, h = in.dim(2), d = in.dim(3);
  const Shape out_shape{b, l, n * h, d};
  WB_CHECK(out.shape() == out_shape, "Ulysses: output ", out.describe(), ", expected ",
           core::shape_str(out_shape));
  // [B, N (token block = destination rank), Ll, H/N, D] → [N, B, Ll, H/N, D].
  Tensor send = view(scratch.send, {n, b, l, h, d}, in);
  ops::permute(ctx, in.reshape({b, n, l, h, d}), {1, 0, 2, 3, 4}, send);
  Tensor recv = view(scratch.recv, {n, b, l, h, d}, in);
  {
    const core::ProfileScope profile(ctx, "all_to_all");
    comm.all_to_all(send, recv);
  }
  // recv is [N (source rank = head block), B, Ll, H/N, D] → [B, Ll, N, H/N, D].
  Tensor out5 = out.reshape({b, l, n, h, d});
  ops::permute(ctx, recv, {1, 2, 0, 3, 4}, out5);
}

void gather_sequence(const core::Context& ctx, Comm& comm, const Tensor& local,
                     UlyssesScratch& scratch, Tensor& out) {
  const int64_t n = comm.size();
  WB_CHECK(local.ndim() == 3, "Ulysses gather: ", local.describe(), " is not [B, L, P]");
  const int64_t b = local.dim(0), l = local.dim(1), p = local.dim(2);
  const Shape out_shape{b, n * l, p};
  WB_CHECK(out.shape() == out_shape, "Ulysses gather: output ", out.describe(), ", expected ",
           core::shape_str(out_shape));
  // all_gather stacks the ranks' blocks first: [N, B, Ll, P] → [B, N·Ll, P].
  Tensor gathered = view(scratch.recv, {n * b, l, p}, local);
  {
    const core::ProfileScope profile(ctx, "all_gather");
    comm.all_gather(local, gathered);
  }
  Tensor out4 = out.reshape({b, n, l, p});
  ops::permute(ctx, gathered.reshape({n, b, l, p}), {1, 0, 2, 3}, out4);
}

}  // namespace wanbatch::parallel
