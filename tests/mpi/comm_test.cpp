// Comm's MPI backend under mpirun (2 and 4 ranks): every collective against values each rank can
// compute on its own (ramps keyed by rank and position), sub-communicators from split, and
// argument mismatches that throw the same message on every rank before any data moves.
#include "parallel/comm.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "error_of.h"
#include "parallel/mpi_runtime.h"
#include "parallel/topology.h"

namespace wanbatch::parallel {
namespace {

using core::DType;
using core::Tensor;

class CommTest : public ::testing::Test {
 protected:
  MpiRuntime runtime_;  // joins the MPI the test main started; outlives comm_
  std::unique_ptr<Comm> comm_ = world(runtime_);
  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
};

using testing::error_of;

TEST_F(CommTest, RankAndSizeMatchMpi) {
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(comm_->rank(), rank);
  EXPECT_EQ(comm_->size(), size);
  comm_->barrier();
}

TEST_F(CommTest, BroadcastsBf16AndI64FromAnyRoot) {
  const int root = size() - 1;
  Tensor bf = Tensor::zeros({3, 5}, DType::BF16);
  Tensor ids = Tensor::zeros({7}, DType::I64);
  if (rank() == root) {
    for (int i = 0; i < 15; ++i) bf.data<uint16_t>()[i] = core::float_to_bf16(0.5f * i - 3.0f);
    for (int i = 0; i < 7; ++i) ids.data<int64_t>()[i] = (int64_t{1} << 40) + i;
  }
  comm_->broadcast(bf, root);
  comm_->broadcast(ids, root);
  for (int i = 0; i < 15; ++i)
    EXPECT_EQ(core::bf16_to_float(bf.data<uint16_t>()[i]), 0.5f * i - 3.0f);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(ids.data<int64_t>()[i], (int64_t{1} << 40) + i);
}

TEST_F(CommTest, AllGatherConcatenatesInRankOrder) {
  std::vector<float> mine(2 * 3);
  for (int i = 0; i < 6; ++i) mine[i] = 100.0f * rank() + i;
  const Tensor in = Tensor::from_vector(mine, {2, 3});
  Tensor out;  // undefined: allocated by the call
  comm_->all_gather(in, out);
  ASSERT_EQ(out.shape(), (core::Shape{2 * size(), 3}));
  for (int r = 0; r < size(); ++r) {
    for (int i = 0; i < 6; ++i) EXPECT_EQ(out.data<float>()[r * 6 + i], 100.0f * r + i);
  }
  // A preallocated output of the right shape is filled in place.
  Tensor given = Tensor::zeros({2 * size(), 3}, DType::F32);
  const void* where = given.raw();
  comm_->all_gather(in, given);
  EXPECT_EQ(given.raw(), where);
  EXPECT_EQ(given.to_floats(), out.to_floats());
}

TEST_F(CommTest, AllToAllExchangesEqualBlocks) {
  const int rows = 2;  // per destination
  std::vector<int32_t> mine(size() * rows * 3);
  for (int row = 0; row < size() * rows; ++row) {
    for (int c = 0; c < 3; ++c) mine[row * 3 + c] = rank() * 10000 + row * 10 + c;
  }
  const Tensor in = Tensor::from_vector(mine, {size() * rows, 3});
  Tensor out;
  comm_->all_to_all(in, out);
  ASSERT_EQ(out.shape(), in.shape());
  // Block j of out is block `rank` of rank j's input.
  for (int j = 0; j < size(); ++j) {
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(out.data<int32_t>()[(j * rows + r) * 3 + c],
                  j * 10000 + (rank() * rows + r) * 10 + c);
      }
    }
  }
}

TEST_F(CommTest, ThreeAllToAllsInFlightAtOnceEachLandInTheirOutput) {
  // Ulysses' v, q and k: three exchanges started before any is joined, of different shapes and
  // dtypes, joined in another order than started. Rows go to ranks as in all_to_all.
  const int rows = 2;  // per destination
  const DType dtypes[] = {DType::I32, DType::BF16, DType::F32};
  std::vector<Tensor> ins, outs;
  for (int slot = 0; slot < Comm::kAllToAllSlots; ++slot) {
    const int width = slot + 1;
    std::vector<float> mine(size() * rows * width);
    for (int row = 0; row < size() * rows; ++row) {
      for (int c = 0; c < width; ++c) mine[row * width + c] = 32.0f * rank() + 4 * row + c;
    }
    ins.push_back(Tensor::from_vector(mine, {size() * rows, width}).to(dtypes[slot]));
    outs.push_back(Tensor::zeros(ins.back().shape(), dtypes[slot]));
    comm_->all_to_all_start(ins.back(), outs.back(), slot);
  }
  for (int slot : {1, 2, 0}) comm_->all_to_all_join(slot);
  for (int slot = 0; slot < Comm::kAllToAllSlots; ++slot) {
    const int width = slot + 1;
    ASSERT_EQ(outs[slot].dtype(), dtypes[slot]);
    const std::vector<float> got = outs[slot].to_floats();
    // Block j of out is block `rank` of rank j's input (every value is exact in bf16).
    for (int j = 0; j < size(); ++j) {
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < width; ++c) {
          EXPECT_EQ(got[(j * rows + r) * width + c], 32.0f * j + 4 * (rank() * rows + r) + c)
              << "slot " << slot;
        }
      }
    }
  }
  EXPECT_EQ(error_of([&] { comm_->all_to_all_start(ins[0], outs[0], 3); }),
            "all_to_all_start: slot 3 (0 to 2)");
  EXPECT_EQ(error_of([&] { comm_->all_to_all_join(-1); }), "all_to_all_join: slot -1 (0 to 2)");
}

TEST_F(CommTest, AllToAllVMovesUnequalAndEmptySplits) {
  // Rank i sends (i + j) % 3 rows to rank j: zero rows for some pairs at every world size.
  auto count = [](int from, int to) -> int64_t { return (from + to) % 3; };
  auto value = [](int from, int to, int64_t row, int c) -> int64_t {
    return from * 1000000 + to * 10000 + row * 10 + c;
  };
  std::vector<int64_t> send_counts(size()), recv_counts(size()), mine;
  for (int j = 0; j < size(); ++j) {
    send_counts[j] = count(rank(), j);
    recv_counts[j] = count(j, rank());
    for (int64_t row = 0; row < send_counts[j]; ++row) {
      for (int c = 0; c < 2; ++c) mine.push_back(value(rank(), j, row, c));
    }
  }
  const int64_t send_rows = static_cast<int64_t>(mine.size()) / 2;
  const Tensor in =
      mine.empty() ? Tensor::zeros({0, 2}, DType::I64) : Tensor::from_vector(mine, {send_rows, 2});
  Tensor out;
  comm_->all_to_all_v(in, send_counts, out, recv_counts);
  int64_t recv_rows = 0;
  for (int64_t n : recv_counts) recv_rows += n;
  ASSERT_EQ(out.shape(), (core::Shape{recv_rows, 2}));
  int64_t at = 0;
  for (int j = 0; j < size(); ++j) {
    for (int64_t row = 0; row < recv_counts[j]; ++row, ++at) {
      for (int c = 0; c < 2; ++c)
        EXPECT_EQ(out.data<int64_t>()[at * 2 + c], value(j, rank(), row, c));
    }
  }
}

TEST_F(CommTest, AllReduceSumsEveryDtype) {
  const int n = 10;
  std::vector<float> f(n);
  std::vector<int64_t> l(n);
  for (int i = 0; i < n; ++i) {
    f[i] = 0.25f * (rank() + 1) * i;
    l[i] = (int64_t{1} << 35) * rank() + i;
  }
  Tensor tf = Tensor::from_vector(f, {2, 5});
  Tensor tl = Tensor::from_vector(l, {n});
  Tensor tb = tf.to(DType::BF16);
  comm_->all_reduce_sum(tf);
  comm_->all_reduce_sum(tl);
  comm_->all_reduce_sum(tb);
  const int triangle = size() * (size() + 1) / 2;  // sum of rank + 1
  const int64_t rank_sum = size() * (size() - 1) / 2;
  for (int i = 0; i < n; ++i) {
    // Small multiples of 0.25 are exact in fp32 and in bf16 (8 significant bits suffice here).
    EXPECT_EQ(tf.data<float>()[i], 0.25f * triangle * i);
    EXPECT_EQ(core::bf16_to_float(tb.data<uint16_t>()[i]), 0.25f * triangle * i);
    EXPECT_EQ(tl.data<int64_t>()[i], (int64_t{1} << 35) * rank_sum + int64_t{size()} * i);
  }
}

TEST_F(CommTest, SplitFormsSubGroupsOrderedByKey) {
  // Even and odd ranks, each group ordered by descending world rank.
  const std::unique_ptr<Comm> sub = comm_->split(rank() % 2, -rank());
  const int members = (size() + 1 - rank() % 2) / 2;
  ASSERT_EQ(sub->size(), members);
  Tensor out;
  sub->all_gather(Tensor::from_vector(std::vector<int32_t>{rank()}, {1}), out);
  ASSERT_EQ(out.numel(), members);
  for (int i = 0; i < members; ++i) {
    EXPECT_EQ(out.data<int32_t>()[i], (members - 1 - i) * 2 + rank() % 2);
    if (out.data<int32_t>()[i] == rank()) {
      EXPECT_EQ(sub->rank(), i);
    }
  }
  Tensor sum = Tensor::from_vector(std::vector<int64_t>{rank()}, {1});
  sub->all_reduce_sum(sum);
  int64_t want = 0;
  for (int r = rank() % 2; r < size(); r += 2) want += r;
  EXPECT_EQ(sum.data<int64_t>()[0], want);
}

TEST_F(CommTest, SplitsAlongTheTopology) {
  const Topology t = Topology::make(size(), rank(), 2, false, 0);  // size is even: 2 or 4
  const std::unique_ptr<Comm> sp = comm_->split(t.sp_group().color, t.sp_group().key);
  const std::unique_ptr<Comm> dp = comm_->split(t.dp_group().color, t.dp_group().key);
  EXPECT_EQ(sp->size(), t.sp);
  EXPECT_EQ(sp->rank(), t.sp_index);
  EXPECT_EQ(dp->size(), t.dp);
  EXPECT_EQ(dp->rank(), t.dp_index);
  // An sp group is two consecutive ranks: an all-to-all inside it swaps their second rows.
  const Tensor in = Tensor::from_vector(std::vector<int32_t>{rank() * 10, rank() * 10 + 1}, {2});
  Tensor out;
  sp->all_to_all(in, out);
  const int first = rank() - t.sp_index;
  EXPECT_EQ(out.data<int32_t>()[0], first * 10 + t.sp_index);
  EXPECT_EQ(out.data<int32_t>()[1], (first + 1) * 10 + t.sp_index);
}

TEST_F(CommTest, MismatchedShapesThrowTheSameMessageOnEveryRank) {
  const Tensor in = Tensor::zeros({rank() == 1 ? 3 : 2, 4}, DType::F32);
  Tensor out;
  EXPECT_EQ(error_of([&] { comm_->all_gather(in, out); }),
            "all_gather: the ranks' inputs differ: rank 0 passes [2, 4] f32, rank 1 passes "
            "[3, 4] f32");
  EXPECT_FALSE(out.defined());

  Tensor wrong = Tensor::zeros({2, 4}, DType::F32);
  const Tensor same = Tensor::zeros({2, 4}, DType::F32);
  EXPECT_EQ(error_of([&] { comm_->all_gather(same, wrong); }),
            "all_gather: rank 0's output is [2, 4] f32 but should be [" +
                std::to_string(2 * size()) + ", 4] f32");

  Tensor dtype = Tensor::zeros({2}, rank() == size() - 1 ? DType::BF16 : DType::F32);
  EXPECT_EQ(error_of([&] { comm_->broadcast(dtype, 0); }),
            "broadcast: rank " + std::to_string(size() - 1) +
                " passes [2] bf16 but the root (rank 0) sends [2] f32");

  const Tensor odd = Tensor::zeros({size() + 1, 2}, DType::F32);
  EXPECT_EQ(error_of([&] { comm_->all_to_all(odd, out); }),
            "all_to_all: " + std::to_string(size() + 1) + " rows ([" + std::to_string(size() + 1) +
                ", 2] f32) do not split evenly over " + std::to_string(size()) + " ranks");

  // all_to_all_v: rank 0 sends one row to everyone, but rank 1 expects two from it.
  std::vector<int64_t> send(size(), rank() == 0 ? 1 : 0), recv(size(), 0);
  recv[0] = rank() == 1 ? 2 : 1;
  const Tensor rows = Tensor::zeros({rank() == 0 ? size() : 0, 2}, DType::F32);
  EXPECT_EQ(error_of([&] { comm_->all_to_all_v(rows, send, out, recv); }),
            "all_to_all_v: rank 0 sends 1 rows to rank 1, which expects 2");

  // The communicator is still usable after a rejected call.
  Tensor sum = Tensor::from_vector(std::vector<int32_t>{1}, {1});
  comm_->all_reduce_sum(sum);
  EXPECT_EQ(sum.data<int32_t>()[0], size());
}

}  // namespace
}  // namespace wanbatch::parallel
