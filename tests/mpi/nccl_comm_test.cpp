// Comm's NCCL backend under mpirun (2 and 4 ranks, one GPU per rank): every collective against
// the MPI backend on the same data (host copies), byte for byte where both compute the same
// thing; unequal all_to_all_v counts with zeros; sub-communicators from split; ordering with ops
// queued on the compute stream before and after; argument errors that throw the same message on
// every rank. Every rank skips when its node has fewer GPUs than ranks (decided collectively, so
// no rank waits in a collective for one that skipped).
#include "parallel/nccl_comm.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "error_of.h"
#include "parallel/comm.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::parallel {
namespace {

using core::Device;
using core::DType;
using core::Shape;
using core::Tensor;

constexpr DType kDtypes[] = {DType::I32, DType::F32, DType::BF16};

// The MPI runtime, the MPI world, one Context and the NCCL communicator, created once for all
// tests (NCCL initialization takes a while) and destroyed before the test main finalizes MPI.
class NcclCommTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    runtime_ = std::make_unique<MpiRuntime>();
    mpi_ = world(*runtime_);
    // Ranks sharing this node, and whether it has a GPU for each; every rank learns whether all
    // nodes do before anything NCCL starts.
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int local_rank = 0, local_size = 1;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    const int devices = core::cuda_device_count();
    int enough = devices > 0 && devices >= local_size ? 1 : 0;
    int all_enough = 0;
    MPI_Allreduce(&enough, &all_enough, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_enough) {
      skip_reason_ =
          "a node has fewer CUDA devices than ranks (this one: " + std::to_string(devices) +
          " for " + std::to_string(local_size) + ")";
      return;
    }
    ctx_ = std::make_unique<core::Context>(core::Context::cuda(local_rank % devices));
    nccl_ = make_nccl_comm(*mpi_, *ctx_);
  }

  static void TearDownTestSuite() {
    nccl_.reset();  // before the bootstrap it uses and MPI
    ctx_.reset();
    mpi_.reset();
    runtime_.reset();
  }

  void SetUp() override {
    if (!nccl_) GTEST_SKIP() << skip_reason_;
  }

  static int rank() { return mpi_->rank(); }
  static int size() { return mpi_->size(); }
  static Device device() { return ctx_->device(); }

  static inline std::unique_ptr<MpiRuntime> runtime_;
  static inline std::unique_ptr<Comm> mpi_;
  static inline std::unique_ptr<core::Context> ctx_;
  static inline std::unique_ptr<Comm> nccl_;
  static inline std::string skip_reason_;
};

using testing::error_of;

// A host tensor of random values. With `integers`, small whole numbers whose sums over up to 4
// ranks are exact in every dtype, so sums are equal whatever order each backend adds in.
Tensor random_host(const Shape& shape, DType dtype, uint32_t seed, bool integers = false) {
  std::mt19937 rng(seed);
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  std::uniform_int_distribution<int> whole(-16, 16);
  std::uniform_real_distribution<float> real(-4.0f, 4.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float value = integers ? static_cast<float>(whole(rng)) : real(rng);
    switch (dtype) {
      case DType::F32:
        t.data<float>()[i] = value;
        break;
      case DType::BF16:
        t.data<uint16_t>()[i] = core::float_to_bf16(value);
        break;
      case DType::F16:
        t.data<uint16_t>()[i] = core::float_to_f16(value);
        break;
      case DType::I32:
        t.data<int32_t>()[i] =
            integers ? whole(rng) : static_cast<int32_t>(rng() % 2000001) - 1000000;
        break;
      case DType::I64:
        t.data<int64_t>()[i] =
            integers ? whole(rng) : (int64_t{1} << 40) + static_cast<int64_t>(rng());
        break;
      case DType::F8E4M3:
        t.data<uint8_t>()[i] = core::float_to_f8e4m3(value);
        break;
    }
  }
  return t;
}

// A device tensor of `shape` whose every byte is 0xff (NaN in the float dtypes, -1 in the
// integer ones): a result the collective failed to write shows.
Tensor poisoned_device(const Shape& shape, DType dtype, Device device) {
  Tensor host = Tensor::empty(shape, dtype);
  if (host.nbytes() > 0) std::memset(host.raw(), 0xff, host.nbytes());
  return host.to(device);
}

// Fails unless `actual` (any device) has `expected`'s shape, dtype and bytes.
void expect_same_bytes(const Tensor& expected, const Tensor& actual, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  const Tensor host = actual.to(Device::cpu());
  ASSERT_EQ(host.nbytes(), expected.nbytes()) << what;
  if (expected.nbytes() == 0) return;
  const auto* a = static_cast<const unsigned char*>(expected.raw());
  const auto* b = static_cast<const unsigned char*>(host.raw());
  size_t first = 0;
  while (first < expected.nbytes() && a[first] == b[first]) ++first;
  EXPECT_EQ(first, expected.nbytes())
      << what << ": first differing byte at " << first << " (element "
      << first / core::dtype_size(expected.dtype()) << ")";
}

std::string name_of(DType dtype) { return std::string(core::dtype_name(dtype)); }

TEST_F(NcclCommTest, RankAndSizeMatchTheBootstrap) {
  EXPECT_EQ(nccl_->rank(), mpi_->rank());
  EXPECT_EQ(nccl_->size(), mpi_->size());
  nccl_->barrier();
  nccl_->barrier();
}

TEST_F(NcclCommTest, BroadcastMatchesMpiFromEveryRoot) {
  for (DType dtype : kDtypes) {
    for (int root = 0; root < size(); ++root) {
      const Tensor data = random_host({3, 7, 5}, dtype, 100 * rank() + root);
      Tensor expected = data.clone();
      mpi_->broadcast(expected, root);
      Tensor actual = data.to(device());
      nccl_->broadcast(actual, root);
      expect_same_bytes(expected, actual,
                        "broadcast " + name_of(dtype) + " from " + std::to_string(root));
    }
  }
}

TEST_F(NcclCommTest, AllGatherMatchesMpi) {
  for (DType dtype : kDtypes) {
    const Tensor data = random_host({3, 5}, dtype, 7 + rank());
    Tensor expected;
    mpi_->all_gather(data, expected);
    Tensor allocated;  // undefined: allocated on the device by the call
    nccl_->all_gather(data.to(device()), allocated);
    EXPECT_TRUE(allocated.device() == device());
    expect_same_bytes(expected, allocated, "all_gather " + name_of(dtype));

    Tensor given = poisoned_device({3 * size(), 5}, dtype, device());
    const void* where = given.raw();
    nccl_->all_gather(data.to(device()), given);
    EXPECT_EQ(given.raw(), where);  // filled in place
    expect_same_bytes(expected, given, "all_gather into a given output " + name_of(dtype));
  }
}

TEST_F(NcclCommTest, AllToAllMatchesMpi) {
  for (DType dtype : kDtypes) {
    const Tensor data = random_host({2 * size(), 3, 4}, dtype, 31 * rank() + 1);
    Tensor expected;
    mpi_->all_to_all(data, expected);
    Tensor actual = poisoned_device(data.shape(), dtype, device());
    nccl_->all_to_all(data.to(device()), actual);
    expect_same_bytes(expected, actual, "all_to_all " + name_of(dtype));
  }
}

TEST_F(NcclCommTest, ThreeAllToAllsInFlightMatchMpiInStreamOrder) {
  // Ulysses' v, q and k: three exchanges started one after another with compute queued between
  // them (which they overlap), joined in another order than started. Each input is written by an
  // op queued just before its start and each output read by an op queued just after its join,
  // with no host synchronization: an exchange that did not wait for its input, or a read that did
  // not wait for its exchange (or landed in another slot's output), would see stale data.
  const int64_t rows = 64 * size(), width = 4096;  // 1 MiB per rank and exchange
  const Tensor busy_in = Tensor::zeros({int64_t{1} << 24}, DType::F32, device());
  Tensor busy_out = Tensor::empty(busy_in.shape(), DType::F32, device());
  constexpr int kSlots = Comm::kAllToAllSlots;
  for (int round = 0; round < 3; ++round) {
    std::vector<Tensor> expected(kSlots), sources(kSlots), ins(kSlots), outs(kSlots),
        halved(kSlots);
    for (int slot = 0; slot < kSlots; ++slot) {
      const Tensor host =
          random_host({rows, width + slot}, DType::F32, 1000 * round + 10 * slot + rank());
      mpi_->all_to_all(host, expected[slot]);
      sources[slot] = host.to(device());
      ins[slot] = Tensor::empty(host.shape(), DType::F32, device());
      outs[slot] = poisoned_device(host.shape(), DType::F32, device());
      halved[slot] = Tensor::empty(host.shape(), DType::F32, device());
    }
    ctx_->synchronize();
    for (int slot = 0; slot < kSlots; ++slot) {
      core::ops::scale(*ctx_, sources[slot], 2.0f, ins[slot]);  // exact in f32
      nccl_->all_to_all_start(ins[slot], outs[slot], slot);
      core::ops::scale(*ctx_, busy_in, 1.0f, busy_out);
    }
    for (int slot : {2, 0, 1}) {
      nccl_->all_to_all_join(slot);
      core::ops::scale(*ctx_, outs[slot], 0.5f, halved[slot]);
    }
    ctx_->synchronize();
    for (int slot = 0; slot < kSlots; ++slot) {
      expect_same_bytes(expected[slot], halved[slot],
                        "round " + std::to_string(round) + ", slot " + std::to_string(slot));
    }
  }
  Tensor in = Tensor::zeros({size(), 2}, DType::F32, device());
  Tensor out = Tensor::zeros({size(), 2}, DType::F32, device());
  EXPECT_EQ(error_of([&] { nccl_->all_to_all_start(in, out, kSlots); }),
            "all_to_all_start: slot 3 (0 to 2)");
  EXPECT_EQ(error_of([&] { nccl_->all_to_all_join(-1); }), "all_to_all_join: slot -1 (0 to 2)");
}

// Rows rank i sends rank j under two count patterns: one symmetric in which rank 0 sends and
// receives nothing, one asymmetric; both have zero counts between some pairs.
int64_t rows_sent(int pattern, int i, int j) {
  return pattern == 0 ? (i * j) % 3 : (i + 2 * j) % 4;
}

TEST_F(NcclCommTest, AllToAllVWithUnequalAndZeroCountsMatchesMpi) {
  for (int pattern = 0; pattern < 2; ++pattern) {
    std::vector<int64_t> send(size()), recv(size());
    int64_t rows = 0;
    for (int j = 0; j < size(); ++j) {
      send[j] = rows_sent(pattern, rank(), j);
      recv[j] = rows_sent(pattern, j, rank());
      rows += send[j];
    }
    for (DType dtype : kDtypes) {
      const std::string what =
          "all_to_all_v pattern " + std::to_string(pattern) + " " + name_of(dtype);
      const Tensor data = random_host({rows, 2, 3}, dtype, 1000 + 10 * rank() + pattern);
      Tensor expected;
      mpi_->all_to_all_v(data, send, expected, recv);
      Tensor allocated;
      nccl_->all_to_all_v(data.to(device()), send, allocated, recv);
      expect_same_bytes(expected, allocated, what);
      Tensor given = poisoned_device(expected.shape(), dtype, device());
      nccl_->all_to_all_v(data.to(device()), send, given, recv);
      expect_same_bytes(expected, given, what + " into a given output");
    }
  }
}

TEST_F(NcclCommTest, AllReduceSumMatchesMpiExactly) {
  // Whole numbers: every order of addition gives the same sum, so the bytes must agree (bf16 and
  // f16 go through fp32 in both backends).
  for (DType dtype : {DType::I32, DType::I64, DType::F32, DType::BF16, DType::F16}) {
    const Tensor data = random_host({129, 3}, dtype, 555 + rank(), /*integers=*/true);
    Tensor expected = data.clone();
    mpi_->all_reduce_sum(expected);
    Tensor actual = data.to(device());
    nccl_->all_reduce_sum(actual);
    expect_same_bytes(expected, actual, "all_reduce_sum " + name_of(dtype));
  }
}

TEST_F(NcclCommTest, AllReduceSumOfRealsMatchesMpiWithinRounding) {
  const Tensor data = random_host({4096}, DType::F32, 77 + rank());
  Tensor expected = data.clone();
  mpi_->all_reduce_sum(expected);
  Tensor actual = data.to(device());
  nccl_->all_reduce_sum(actual);
  const std::vector<float> want = expected.to_floats();
  const std::vector<float> got = actual.to_floats();
  ASSERT_EQ(got.size(), want.size());
  // The backends may add the ≤ 4 terms (each |x| < 4) in different orders: each order's result
  // is within (size-1)·2^-24·Σ|x| < 3·6e-8·16 ≈ 3e-6 of the exact sum.
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << "element " << i;
}

TEST_F(NcclCommTest, SplitIntoTwoGroupsMatchesMpiSplit) {
  // Even and odd ranks, in reverse order inside each group (key = -rank).
  const int color = rank() % 2;
  const std::unique_ptr<Comm> mpi_sub = mpi_->split(color, -rank());
  const std::unique_ptr<Comm> nccl_sub = nccl_->split(color, -rank());
  ASSERT_EQ(nccl_sub->rank(), mpi_sub->rank());
  ASSERT_EQ(nccl_sub->size(), mpi_sub->size());

  const Tensor data = random_host({2, 3}, DType::I32, 900 + rank());
  Tensor expected;
  mpi_sub->all_gather(data, expected);
  Tensor actual;
  nccl_sub->all_gather(data.to(device()), actual);
  expect_same_bytes(expected, actual, "all_gather in the sub-group");

  const Tensor sums = random_host({65}, DType::F32, 901 + rank(), /*integers=*/true);
  Tensor sum_expected = sums.clone();
  mpi_sub->all_reduce_sum(sum_expected);
  Tensor sum_actual = sums.to(device());
  nccl_sub->all_reduce_sum(sum_actual);
  expect_same_bytes(sum_expected, sum_actual, "all_reduce_sum in the sub-group");

  const Tensor rows = random_host({2 * nccl_sub->size(), 4}, DType::BF16, 902 + rank());
  Tensor swapped_expected;
  mpi_sub->all_to_all(rows, swapped_expected);
  Tensor swapped;
  nccl_sub->all_to_all(rows.to(device()), swapped);
  expect_same_bytes(swapped_expected, swapped, "all_to_all in the sub-group");
  nccl_sub->barrier();

  // The parent still works after the split.
  Tensor one = Tensor::from_vector(std::vector<int32_t>{1}, {1}).to(device());
  nccl_->all_reduce_sum(one);
  EXPECT_EQ(one.to(Device::cpu()).data<int32_t>()[0], size());
}

TEST_F(NcclCommTest, SplitWithANegativeColorLeavesThatRankOut) {
  // Rank 0 opts out: it takes part in the split, then gets the MPI backend's error; the others
  // form one group.
  const int color = rank() == 0 ? -1 : 0;
  std::unique_ptr<Comm> sub;
  const std::string error = error_of([&] { sub = nccl_->split(color, rank()); });
  if (rank() == 0) {
    EXPECT_EQ(error, "split: color -1 is negative");
    EXPECT_EQ(sub, nullptr);
  } else {
    ASSERT_EQ(error, "");
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->size(), size() - 1);
    EXPECT_EQ(sub->rank(), rank() - 1);
    Tensor one = Tensor::from_vector(std::vector<int32_t>{1}, {1}).to(device());
    sub->all_reduce_sum(one);
    EXPECT_EQ(one.to(Device::cpu()).data<int32_t>()[0], size() - 1);
  }
  nccl_->barrier();
}

TEST_F(NcclCommTest, AnInvalidTimeoutThrowsEverywhere) {
  setenv("WANBATCH_NCCL_TIMEOUT", rank() == 0 ? "soon" : "60", 1);
  const std::string error = error_of([&] { make_nccl_comm(*mpi_, *ctx_); });
  unsetenv("WANBATCH_NCCL_TIMEOUT");
  EXPECT_EQ(error,
            "make_nccl_comm: rank 0 has an invalid WANBATCH_NCCL_TIMEOUT (a positive number of "
            "seconds)");
}

TEST_F(NcclCommTest, CollectivesAreOrderedWithTheComputeStream) {
  // scale → all_reduce_sum → scale, all queued without host synchronization, many times over a
  // large tensor: a collective that did not wait for the first scale, or a second scale that did
  // not wait for the collective, would read stale data.
  const int64_t n = int64_t{1} << 22;
  std::vector<float> ramp(n);
  for (int64_t i = 0; i < n; ++i) ramp[i] = static_cast<float>((i % 1000) + rank());
  const Tensor x = Tensor::from_vector(ramp, {n}).to(device());
  int64_t rank_sum = 0;
  for (int r = 0; r < size(); ++r) rank_sum += r;
  for (int round = 0; round < 5; ++round) {
    Tensor doubled = Tensor::empty({n}, DType::F32, device());
    core::ops::scale(*ctx_, x, 2.0f, doubled);
    nccl_->all_reduce_sum(doubled);
    Tensor halved = Tensor::empty({n}, DType::F32, device());
    core::ops::scale(*ctx_, doubled, 0.5f, halved);
    ctx_->synchronize();
    const std::vector<float> got = halved.to_floats();
    for (int64_t i = 0; i < n; i += 4099) {
      const float want = static_cast<float>(size() * (i % 1000) + rank_sum);
      ASSERT_EQ(got[i], want) << "round " << round << ", element " << i;
    }
  }
}

TEST_F(NcclCommTest, BadArgumentsThrowTheSameMessageOnEveryRank) {
  Tensor host = Tensor::zeros({3}, DType::F32);
  EXPECT_EQ(error_of([&] { nccl_->all_reduce_sum(host); }),
            "all_reduce_sum: rank 0 passes a host tensor ([3] f32); the NCCL communicator moves "
            "CUDA tensors");

  const Tensor in = Tensor::zeros({rank() == 1 ? 3 : 2, 4}, DType::F32, device());
  Tensor out;
  EXPECT_EQ(error_of([&] { nccl_->all_gather(in, out); }),
            "all_gather: the ranks' inputs differ: rank 0 passes [2, 4] f32 cuda, rank 1 passes "
            "[3, 4] f32 cuda");
  EXPECT_FALSE(out.defined());

  // A host output for a device input.
  const Tensor same = Tensor::zeros({2, 4}, DType::F32, device());
  Tensor host_out = Tensor::zeros({2 * size(), 4}, DType::F32);
  EXPECT_EQ(error_of([&] { nccl_->all_gather(same, host_out); }),
            "all_gather: rank 0's output is [" + std::to_string(2 * size()) +
                ", 4] f32 but should be [" + std::to_string(2 * size()) + ", 4] f32 cuda");

  // all_to_all_v: rank 0 sends one row to everyone, but rank 1 expects two from it.
  std::vector<int64_t> send(size(), rank() == 0 ? 1 : 0), recv(size(), 0);
  recv[0] = rank() == 1 ? 2 : 1;
  const Tensor rows = Tensor::zeros({rank() == 0 ? size() : 0, 2}, DType::F32, device());
  EXPECT_EQ(error_of([&] { nccl_->all_to_all_v(rows, send, out, recv); }),
            "all_to_all_v: rank 0 sends 1 rows to rank 1, which expects 2");

  // Still usable after rejected calls.
  Tensor sum = Tensor::from_vector(std::vector<int32_t>{1}, {1}).to(device());
  nccl_->all_reduce_sum(sum);
  EXPECT_EQ(sum.to(Device::cpu()).data<int32_t>()[0], size());
}

TEST_F(NcclCommTest, ACpuContextOnOneRankThrowsEverywhere) {
  const core::Context cpu = core::Context::cpu();
  const core::Context& mine = rank() == size() - 1 ? cpu : *ctx_;
  EXPECT_EQ(error_of([&] { make_nccl_comm(*mpi_, mine); }),
            "make_nccl_comm: rank " + std::to_string(size() - 1) +
                " passes a CPU context; the NCCL communicator needs a CUDA context");
}

}  // namespace
}  // namespace wanbatch::parallel
