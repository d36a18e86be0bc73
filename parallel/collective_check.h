// The argument checks every Comm backend shares. Before a collective moves any data, each rank
// describes its arguments as a few int64s (describe_*), the backend gathers every rank's
// description in rank order (over MPI), and the matching check_* validates all of them the same
// way on every rank: a mismatch throws the same wanbatch::Error everywhere instead of hanging or
// corrupting memory. A backend may append entries of its own after a description; the checks
// find each rank's record by dividing the gathered length by the communicator size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace wanbatch::parallel::detail {

constexpr int kMaxDims = 8;
constexpr int kMetaInts = 4 + kMaxDims;  // defined, dtype, on CUDA, ndim, dims

// Where a backend's tensors must live: the MPI backend moves host tensors, NCCL device tensors.
enum class Memory { Host, Device };

inline void append_meta(std::vector<int64_t>& out, const core::Tensor& t) {
  out.push_back(t.defined() ? 1 : 0);
  out.push_back(t.defined() ? static_cast<int64_t>(t.dtype()) : 0);
  out.push_back(t.defined() && t.device().is_cuda() ? 1 : 0);
  out.push_back(t.defined() ? t.ndim() : 0);
  for (int i = 0; i < kMaxDims; ++i) out.push_back(t.defined() && i < t.ndim() ? t.dim(i) : 0);
}

// One tensor argument as a rank described it.
struct Meta {
  bool defined = false;
  core::DType dtype = core::DType::F32;
  bool cuda = false;
  int ndim = 0;
  core::Shape shape;

  static Meta read(const int64_t* p) {
    Meta m;
    m.defined = p[0] != 0;
    m.dtype = static_cast<core::DType>(p[1]);
    m.cuda = p[2] != 0;
    m.ndim = static_cast<int>(p[3]);
    for (int i = 0; i < std::min(m.ndim, kMaxDims); ++i) m.shape.push_back(p[4 + i]);
    return m;
  }
  bool operator==(const Meta& o) const {
    return defined == o.defined && dtype == o.dtype && cuda == o.cuda && ndim == o.ndim &&
           shape == o.shape;
  }
  core::Shape trailing() const {
    return core::Shape(shape.begin() + std::min<size_t>(1, shape.size()), shape.end());
  }
  std::string str() const {
    if (!defined) return "an undefined tensor";
    return core::shape_str(shape) + " " + std::string(core::dtype_name(dtype)) +
           (cuda ? " cuda" : "");
  }
};

inline Meta expected(core::Shape shape, core::DType dtype, Memory memory) {
  Meta m;
  m.defined = true;
  m.dtype = dtype;
  m.cuda = memory == Memory::Device;
  m.ndim = static_cast<int>(shape.size());
  m.shape = std::move(shape);
  return m;
}

inline size_t row_bytes(const Meta& m) {
  return static_cast<size_t>(core::shape_numel(m.trailing())) * core::dtype_size(m.dtype);
}

// The parts of the checks every collective shares: a defined tensor in the backend's memory, of
// at most kMaxDims dimensions (with at least `min_dims`).
inline void check_input(const char* op, int rank, const Meta& m, int min_dims, Memory memory) {
  if (!m.defined) throw make_error(op, ": rank ", rank, " passes an undefined tensor");
  if (memory == Memory::Host && m.cuda) {
    throw make_error(op, ": rank ", rank, " passes a CUDA tensor (", m.str(),
                     "); the MPI communicator moves host tensors");
  }
  if (memory == Memory::Device && !m.cuda) {
    throw make_error(op, ": rank ", rank, " passes a host tensor (", m.str(),
                     "); the NCCL communicator moves CUDA tensors");
  }
  if (m.ndim > kMaxDims) {
    throw make_error(op, ": rank ", rank, " passes a tensor of ", m.ndim, " dimensions; at most ",
                     kMaxDims, " are supported");
  }
  if (m.ndim < min_dims) {
    throw make_error(op, ": rank ", rank, " passes ", m.str(), "; it needs a leading dimension");
  }
}

inline void check_output(const char* op, int rank, const Meta& out, const Meta& want) {
  if (out.defined && !(out == want)) {
    throw make_error(op, ": rank ", rank, "'s output is ", out.str(), " but should be ",
                     want.str());
  }
}

// The length of one rank's record in `all`.
inline size_t record_length(const std::vector<int64_t>& all, int size) {
  return all.size() / static_cast<size_t>(size);
}

// --- broadcast: {root, tensor} ---

inline std::vector<int64_t> describe_broadcast(const core::Tensor& tensor, int root) {
  std::vector<int64_t> local{root};
  append_meta(local, tensor);
  return local;
}

// The tensor every rank passes (root's description).
inline Meta check_broadcast(const std::vector<int64_t>& all, int size, int root, Memory memory) {
  const char* op = "broadcast";
  const size_t stride = record_length(all, size);
  for (int r = 0; r < size; ++r) {
    if (all[r * stride] != root) {
      throw make_error(op, ": the ranks disagree on the root (rank 0 says ", all[0], ", rank ", r,
                       " says ", all[r * stride], ")");
    }
  }
  if (root < 0 || root >= size) {
    throw make_error(op, ": root ", root, " is not a rank of a communicator of ", size);
  }
  const Meta want = Meta::read(&all[root * stride + 1]);
  for (int r = 0; r < size; ++r) {
    const Meta m = Meta::read(&all[r * stride + 1]);
    check_input(op, r, m, 0, memory);
    if (!(m == want)) {
      throw make_error(op, ": rank ", r, " passes ", m.str(), " but the root (rank ", root,
                       ") sends ", want.str());
    }
  }
  return want;
}

// --- all_gather, all_to_all: {in, out} ---

inline std::vector<int64_t> describe_in_out(const core::Tensor& in, const core::Tensor& out) {
  std::vector<int64_t> local;
  append_meta(local, in);
  append_meta(local, out);
  return local;
}

// Rank 0's input after checking that each rank passes a usable input equal to it.
inline Meta same_inputs(const char* op, const std::vector<int64_t>& all, int size, Memory memory) {
  const size_t stride = record_length(all, size);
  const Meta first = Meta::read(&all[0]);
  for (int r = 0; r < size; ++r) {
    const Meta m = Meta::read(&all[r * stride]);
    check_input(op, r, m, 1, memory);
    if (!(m == first)) {
      throw make_error(op, ": the ranks' inputs differ: rank 0 passes ", first.str(), ", rank ", r,
                       " passes ", m.str());
    }
  }
  return first;
}

// The output every rank gets: the input with size× the rows.
inline Meta check_all_gather(const std::vector<int64_t>& all, int size, Memory memory) {
  const char* op = "all_gather";
  const size_t stride = record_length(all, size);
  const Meta first = same_inputs(op, all, size, memory);
  core::Shape shape = first.shape;
  shape[0] *= size;
  const Meta want = expected(shape, first.dtype, memory);
  for (int r = 0; r < size; ++r)
    check_output(op, r, Meta::read(&all[r * stride + kMetaInts]), want);
  return want;
}

// The input (and output) every rank passes.
inline Meta check_all_to_all(const std::vector<int64_t>& all, int size, Memory memory) {
  const char* op = "all_to_all";
  const size_t stride = record_length(all, size);
  const Meta first = same_inputs(op, all, size, memory);
  if (first.shape[0] % size != 0) {
    throw make_error(op, ": ", first.shape[0], " rows (", first.str(),
                     ") do not split evenly over ", size, " ranks");
  }
  for (int r = 0; r < size; ++r) {
    check_output(op, r, Meta::read(&all[r * stride + kMetaInts]), first);
  }
  return first;
}

// --- all_to_all_v: {in, out, counts ok, send counts, recv counts} ---

inline std::vector<int64_t> describe_all_to_all_v(const core::Tensor& in,
                                                  const std::vector<int64_t>& send_counts,
                                                  const core::Tensor& out,
                                                  const std::vector<int64_t>& recv_counts,
                                                  int size) {
  std::vector<int64_t> local = describe_in_out(in, out);
  const bool counts_ok = send_counts.size() == static_cast<size_t>(size) &&
                         recv_counts.size() == static_cast<size_t>(size);
  local.push_back(counts_ok ? 1 : 0);
  for (int j = 0; j < size; ++j) local.push_back(counts_ok ? send_counts[j] : 0);
  for (int j = 0; j < size; ++j) local.push_back(counts_ok ? recv_counts[j] : 0);
  return local;
}

struct AllToAllV {
  Meta rows;             // rank 0's input: the dtype and trailing shape every rank shares
  int64_t max_rows = 0;  // the most rows any rank sends or receives in total
};

inline AllToAllV check_all_to_all_v(const std::vector<int64_t>& all, int n, Memory memory) {
  const char* op = "all_to_all_v";
  const size_t stride = record_length(all, n);
  auto in_of = [&](int r) { return Meta::read(&all[r * stride]); };
  auto sent = [&](int r, int j) { return all[r * stride + 2 * kMetaInts + 1 + j]; };
  auto received = [&](int r, int j) { return all[r * stride + 2 * kMetaInts + 1 + n + j]; };
  AllToAllV result;
  const Meta first = in_of(0);
  result.rows = first;
  for (int r = 0; r < n; ++r) {
    const Meta m = in_of(r);
    check_input(op, r, m, 1, memory);
    if (m.dtype != first.dtype || m.trailing() != first.trailing()) {
      throw make_error(op, ": the ranks' rows differ: rank 0 passes ", first.str(), ", rank ", r,
                       " passes ", m.str(), " (all but dim 0 and the dtype must agree)");
    }
    if (all[r * stride + 2 * kMetaInts] == 0) {
      throw make_error(op, ": rank ", r, " does not pass one send and one receive count per rank (",
                       n, ")");
    }
  }
  for (int r = 0; r < n; ++r) {
    int64_t send_total = 0, recv_total = 0;
    for (int j = 0; j < n; ++j) {
      if (sent(r, j) < 0 || received(r, j) < 0) {
        throw make_error(op, ": rank ", r, " passes a negative count");
      }
      if (sent(r, j) != received(j, r)) {
        throw make_error(op, ": rank ", r, " sends ", sent(r, j), " rows to rank ", j,
                         ", which expects ", received(j, r));
      }
      send_total += sent(r, j);
      recv_total += received(r, j);
    }
    if (send_total != in_of(r).shape[0]) {
      throw make_error(op, ": rank ", r, "'s send counts add up to ", send_total,
                       " rows but its input ", in_of(r).str(), " has ", in_of(r).shape[0]);
    }
    result.max_rows = std::max({result.max_rows, send_total, recv_total});
    core::Shape shape = first.trailing();
    shape.insert(shape.begin(), recv_total);
    check_output(op, r, Meta::read(&all[r * stride + kMetaInts]),
                 expected(shape, first.dtype, memory));
  }
  return result;
}

// The output this rank allocates when it passes none: the rows it receives, of the shared shape.
inline core::Shape all_to_all_v_output_shape(const AllToAllV& checked,
                                             const std::vector<int64_t>& recv_counts) {
  core::Shape shape = checked.rows.trailing();
  shape.insert(shape.begin(), std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0}));
  return shape;
}

// --- all_reduce_sum: {tensor} ---

// The dtypes every backend sums in their own type (MPI and NCCL both can). The others (bf16, f16,
// fp8) add in fp32 and round once at the end, as comm.h promises.
inline bool sums_natively(core::DType dtype) {
  return dtype == core::DType::F32 || dtype == core::DType::I32 || dtype == core::DType::I64;
}

inline std::vector<int64_t> describe_tensor(const core::Tensor& tensor) {
  std::vector<int64_t> local;
  append_meta(local, tensor);
  return local;
}

inline Meta check_all_reduce(const std::vector<int64_t>& all, int size, Memory memory) {
  const char* op = "all_reduce_sum";
  const size_t stride = record_length(all, size);
  const Meta first = Meta::read(&all[0]);
  for (int r = 0; r < size; ++r) {
    const Meta m = Meta::read(&all[r * stride]);
    check_input(op, r, m, 0, memory);
    if (!(m == first)) {
      throw make_error(op, ": the ranks' tensors differ: rank 0 passes ", first.str(), ", rank ", r,
                       " passes ", m.str());
    }
  }
  return first;
}

}  // namespace wanbatch::parallel::detail
