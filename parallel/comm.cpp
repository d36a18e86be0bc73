#include "parallel/comm.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "parallel/collective_check.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::parallel {

namespace detail {
int world_rank_or_unknown() {
  int rank = -1, initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised && !finalised) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void check_mpi(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  const std::string text(call);
  const std::string name = text.substr(0, text.find('('));
  const int rank = world_rank_or_unknown();
  char message[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, message, &length) != MPI_SUCCESS) {
    std::snprintf(message, sizeof message, "MPI error %d", code);
  }
  throw make_error(name, " failed at ", file, ":", line, " on rank ", rank, ": ", message);
}
}  // namespace detail

namespace {

using core::DType;
using core::Shape;
using core::Tensor;

using detail::Memory;
using detail::Meta;

void check_int_count(const char* op, int64_t count, const char* what) {
  if (count > INT_MAX) {
    throw make_error(op, ": ", count, " ", what, " exceed MPI's int counts; split the transfer");
  }
}

void prepare_output(Tensor& out, const Shape& shape, DType dtype) {
  if (!out.defined()) out = Tensor::empty(shape, dtype);
}

// Validation and buffer handling shared by every host backend; the backends supply byte-moving
// primitives. Every public collective first exchanges argument descriptions (exchange()).
class HostComm : public Comm {
 public:
  void broadcast(Tensor& tensor, int root) override {
    detail::check_broadcast(exchange(detail::describe_broadcast(tensor, root)), size(), root,
                            Memory::Host);
    bcast_bytes(tensor.raw(), tensor.nbytes(), root);
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    const char* op = "all_gather";
    const Meta want =
        detail::check_all_gather(exchange(detail::describe_in_out(in, out)), size(), Memory::Host);
    check_int_count(op, want.shape[0], "rows");
    prepare_output(out, want.shape, want.dtype);
    allgather_rows(in.raw(), in.dim(0), out.raw(), detail::row_bytes(want));
  }

  void all_to_all(const Tensor& in, Tensor& out) override {
    const char* op = "all_to_all";
    const Meta first =
        detail::check_all_to_all(exchange(detail::describe_in_out(in, out)), size(), Memory::Host);
    check_int_count(op, first.shape[0], "rows");
    prepare_output(out, first.shape, first.dtype);
    const std::vector<int64_t> counts(size(), first.shape[0] / size());
    alltoallv_rows(in.raw(), counts, out.raw(), counts, detail::row_bytes(first));
  }

  void all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_counts, Tensor& out,
                    const std::vector<int64_t>& recv_counts) override {
    const char* op = "all_to_all_v";
    const detail::AllToAllV checked = detail::check_all_to_all_v(
        exchange(detail::describe_all_to_all_v(in, send_counts, out, recv_counts, size())), size(),
        Memory::Host);
    check_int_count(op, checked.max_rows, "rows");
    prepare_output(out, detail::all_to_all_v_output_shape(checked, recv_counts),
                   checked.rows.dtype);
    alltoallv_rows(in.raw(), send_counts, out.raw(), recv_counts, detail::row_bytes(checked.rows));
  }

  void all_reduce_sum(Tensor& tensor) override {
    const Meta first =
        detail::check_all_reduce(exchange(detail::describe_tensor(tensor)), size(), Memory::Host);
    if (detail::sums_natively(first.dtype)) {
      allreduce_sum(tensor.raw(), tensor.numel(), first.dtype);
    } else {
      // Reduced-precision floats add in fp32 and round once at the end.
      Tensor wide = tensor.to(DType::F32);
      allreduce_sum(wide.raw(), wide.numel(), DType::F32);
      tensor.copy_from(wide);
    }
  }

 protected:
  // Every rank's `local` (the same length on every rank), concatenated in rank order.
  virtual std::vector<int64_t> exchange(const std::vector<int64_t>& local) = 0;
  virtual void bcast_bytes(void* data, size_t bytes, int root) = 0;
  virtual void allgather_rows(const void* in, int64_t rows, void* out, size_t row_bytes) = 0;
  virtual void alltoallv_rows(const void* in, const std::vector<int64_t>& send_counts, void* out,
                              const std::vector<int64_t>& recv_counts, size_t row_bytes) = 0;
  virtual void allreduce_sum(void* data, int64_t count, DType dtype) = 0;
};

// One rank, no MPI: a run outside a launcher. Collectives are copies.
class LocalComm final : public HostComm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  std::unique_ptr<Comm> split(int color, int) const override {
    WB_CHECK(color >= 0, "split: color ", color, " is negative");
    return std::make_unique<LocalComm>();
  }
  [[noreturn]] void abort(const std::string& message) const override {
    WB_LOG(fatal) << "aborting: " << message;
    std::fflush(nullptr);
    std::exit(1);
  }

 protected:
  std::vector<int64_t> exchange(const std::vector<int64_t>& local) override { return local; }
  void bcast_bytes(void*, size_t, int) override {}
  void allgather_rows(const void* in, int64_t rows, void* out, size_t row_bytes) override {
    if (rows > 0 && row_bytes > 0 && in != out) std::memcpy(out, in, rows * row_bytes);
  }
  void alltoallv_rows(const void* in, const std::vector<int64_t>& send_counts, void* out,
                      const std::vector<int64_t>&, size_t row_bytes) override {
    allgather_rows(in, send_counts[0], out, row_bytes);
  }
  void allreduce_sum(void*, int64_t, DType) override {}
};

// A committed MPI datatype of `bytes` contiguous bytes (one row), freed on scope exit.
class RowType {
 public:
  explicit RowType(size_t bytes) {
    if (bytes > static_cast<size_t>(INT_MAX)) {
      throw make_error("a row of ", bytes, " bytes exceeds MPI's int counts");
    }
    MPI_CHECK(MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &type_));
    MPI_CHECK(MPI_Type_commit(&type_));
  }
  ~RowType() { MPI_Type_free(&type_); }
  RowType(const RowType&) = delete;
  RowType& operator=(const RowType&) = delete;
  MPI_Datatype get() const { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// Transfers larger than this go in pieces: MPI counts are int.
constexpr int64_t kChunkBytes = int64_t{1} << 30;

class MpiComm final : public HostComm {
 public:
  // Takes ownership of `comm` (freed with MPI_Comm_free) and makes its errors return codes.
  explicit MpiComm(MPI_Comm comm) : comm_(comm) {
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiComm() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Comm_free(&comm_);
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override { MPI_CHECK(MPI_Barrier(comm_)); }

  std::unique_ptr<Comm> split(int color, int key) const override {
    // The colour check happens after the split so that a bad colour on one rank cannot leave the
    // others waiting inside MPI_Comm_split.
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub));
    if (sub == MPI_COMM_NULL) throw make_error("split: color ", color, " is negative");
    return std::make_unique<MpiComm>(sub);
  }

  [[noreturn]] void abort(const std::string& message) const override {
    int world_rank = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    WB_LOG(fatal) << "rank " << world_rank << " aborting the job: " << message;
    std::fflush(nullptr);
    MPI_Abort(comm_, 1);
    std::_Exit(1);  // MPI_Abort does not return; this is for the compiler and broken MPIs
  }

 protected:
  std::vector<int64_t> exchange(const std::vector<int64_t>& local) override {
    std::vector<int64_t> all(local.size() * size_);
    MPI_CHECK(MPI_Allgather(local.data(), static_cast<int>(local.size()), MPI_INT64_T, all.data(),
                            static_cast<int>(local.size()), MPI_INT64_T, comm_));
    return all;
  }

  void bcast_bytes(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {
      const size_t n = std::min<size_t>(bytes - done, kChunkBytes);
      MPI_CHECK(MPI_Bcast(p + done, static_cast<int>(n), MPI_BYTE, root, comm_));
      done += n;
    }
  }

  void allgather_rows(const void* in, int64_t rows, void* out, size_t row_bytes) override {
    if (row_bytes == 0) return;
    RowType row(row_bytes);
    MPI_CHECK(MPI_Allgather(in, static_cast<int>(rows), row.get(), out, static_cast<int>(rows),
                            row.get(), comm_));
  }

  void alltoallv_rows(const void* in, const std::vector<int64_t>& send_counts, void* out,
                      const std::vector<int64_t>& recv_counts, size_t row_bytes) override {
    if (row_bytes == 0) return;
    RowType row(row_bytes);
    std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
    int send_at = 0, recv_at = 0;  // totals were checked against INT_MAX
    for (int j = 0; j < size_; ++j) {
      sc[j] = static_cast<int>(send_counts[j]);
      rc[j] = static_cast<int>(recv_counts[j]);
      sd[j] = send_at;
      rd[j] = recv_at;
      send_at += sc[j];
      recv_at += rc[j];
    }
    MPI_CHECK(MPI_Alltoallv(in, sc.data(), sd.data(), row.get(), out, rc.data(), rd.data(),
                            row.get(), comm_));
  }

  void allreduce_sum(void* data, int64_t count, DType dtype) override {
    const MPI_Datatype type = dtype == DType::F32   ? MPI_FLOAT
                              : dtype == DType::I32 ? MPI_INT32_T
                                                    : MPI_INT64_T;
    const size_t element = core::dtype_size(dtype);
    const int64_t per_chunk = kChunkBytes / static_cast<int64_t>(element);
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < count;) {
      const int64_t n = std::min(count - done, per_chunk);
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + done * element, static_cast<int>(n), type, MPI_SUM,
                              comm_));
      done += n;
    }
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> world(const MpiRuntime& runtime) {
  if (!runtime.active()) return std::make_unique<LocalComm>();
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  return std::make_unique<MpiComm>(comm);
}

}  // namespace wanbatch::parallel
