#include "parallel/nccl_comm.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/resources.h"
#include "core/error.h"
#include "core/log.h"
#include "parallel/collective_check.h"
#include "parallel/mpi_check.h"

namespace wanbatch::parallel {

namespace detail {
// Throws for a failed NCCL call. ncclInProgress is no failure: on a non-blocking communicator it
// means "queued", and the caller then waits for the communicator's state (wait_ready below).
void check_nccl(ncclResult_t result, const char* call, const char* file, int line) {
  if (result == ncclSuccess || result == ncclInProgress) return;
  const char* last = ncclGetLastError(nullptr);
  throw make_error(file, ":", line, ": ", call, " failed on rank ", world_rank_or_unknown(), ": ",
                   ncclGetErrorString(result), last && *last ? std::string(" (") + last + ")" : "");
}
}  // namespace detail

#define NCCL_CHECK(call) ::wanbatch::parallel::detail::check_nccl((call), #call, __FILE__, __LINE__)

namespace {

using core::DType;
using core::Tensor;
using core::cuda::DeviceGuard;
using detail::Memory;
using detail::Meta;

constexpr double kDefaultTimeoutSeconds = 600;

template <typename... Args>
std::string text(const Args&... args) {
  return ::wanbatch::detail::concat(args...);
}

// WANBATCH_NCCL_TIMEOUT in seconds, the default when unset, or a negative value when it is not a
// positive number.
double timeout_from_environment() {
  const char* text = std::getenv("WANBATCH_NCCL_TIMEOUT");
  if (text == nullptr || *text == '\0') return kDefaultTimeoutSeconds;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(seconds > 0)) return -1;
  return seconds;
}

ncclConfig_t non_blocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every wait polls ncclCommGetAsyncError, so a failure cannot hang us
  return config;
}

// Ends the job: aborts `comm` (which unblocks its kernels and helper threads) and every rank
// through the bootstrap communicator.
[[noreturn]] void fail_job(ncclComm_t comm, const Comm& bootstrap, const std::string& message) {
  if (comm != nullptr) ncclCommAbort(comm);
  bootstrap.abort(message);
  std::_Exit(1);  // abort() does not return; the compiler cannot see that through the virtual
}

std::string nccl_failure(const char* what, int rank, int device, ncclResult_t state,
                         ncclComm_t comm) {
  const char* last = ncclGetLastError(comm);
  return text("NCCL ", what, " failed on rank ", rank, " (cuda:", device,
              "): ", ncclGetErrorString(state),
              last && *last ? std::string(" (") + last + ")" : std::string());
}

// Polls `done` (true when finished) and the communicator's asynchronous error until done, an
// error, or `timeout` seconds; ends the job on the latter two. Spins briefly first: most waits
// (queuing a collective) finish within microseconds.
template <typename Done>
void poll(ncclComm_t comm, const char* what, const Comm& bootstrap, double timeout, int device,
          Done&& done) {
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0;; ++round) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t got = ncclCommGetAsyncError(comm, &state);
    if (got != ncclSuccess) state = got;
    if (state != ncclSuccess && state != ncclInProgress) {
      fail_job(comm, bootstrap, nccl_failure(what, bootstrap.rank(), device, state, comm));
    }
    if (done(state)) return;
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited > timeout) {
      fail_job(comm, bootstrap,
               text("NCCL ", what, " on rank ", bootstrap.rank(), " (cuda:", device,
                    ") timed out after ", waited,
                    " s (WANBATCH_NCCL_TIMEOUT): a rank died, hangs, or calls a different "
                    "collective"));
    }
    if (round < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

// Waits until the non-blocking communicator has finished the call just made on it (init, split,
// queuing a group): its state leaves ncclInProgress.
void wait_ready(ncclComm_t comm, const char* what, const Comm& bootstrap, double timeout,
                int device) {
  poll(comm, what, bootstrap, timeout, device,
       [](ncclResult_t state) { return state == ncclSuccess; });
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return ncclFloat32;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    default:
      break;
  }
  throw make_error("NCCL all_reduce_sum: no native sum for ", core::dtype_name(dtype));
}

class NcclComm final : public Comm {
 public:
  // Takes ownership of `comm` (an initialized non-blocking communicator) and of `owned_bootstrap`
  // when given (then `bootstrap` is it).
  NcclComm(Comm& bootstrap, std::unique_ptr<Comm> owned_bootstrap, core::Context ctx,
           ncclComm_t comm, double timeout)
      : bootstrap_(bootstrap),
        owned_bootstrap_(std::move(owned_bootstrap)),
        ctx_(std::move(ctx)),
        comm_(comm),
        timeout_(timeout),
        rank_(bootstrap.rank()),
        size_(bootstrap.size()),
        device_(ctx_.device().index) {
    try {
      DeviceGuard guard(device_);
      // High priority: the collective's kernels get SMs ahead of compute queued meanwhile.
      int least = 0, greatest = 0;
      CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
      CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest));
      CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
      for (cudaEvent_t& e : gathered_)
        CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      for (cudaEvent_t& e : exchanged_)
        CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      barrier_word_ = Tensor::zeros({1}, DType::I32, ctx_.device());
    } catch (...) {
      release_cuda();
      ncclCommAbort(comm_);
      throw;
    }
  }

  ~NcclComm() override {
    core::cuda::with_device_noexcept(device_, [&] {
      // Flush what is queued, then free; a communicator that cannot finish (a peer is gone) is
      // aborted instead of waited for forever. No job abort here: this may run while an
      // exception unwinds.
      bool finished = false;
      const ncclResult_t finalize = ncclCommFinalize(comm_);
      if (finalize == ncclSuccess || finalize == ncclInProgress) {
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
          ncclResult_t state = ncclSuccess;
          if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
          if (state == ncclSuccess) {
            finished = true;
            break;
          }
          if (state != ncclInProgress) break;
          if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
              timeout_) {
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      }
      if (finished) {
        ncclCommDestroy(comm_);
      } else {
        WB_LOG(warning) << "rank " << rank_ << ": the NCCL communicator did not finish cleanly; "
                        << "aborting it";
        ncclCommAbort(comm_);
      }
      if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    });
    release_cuda();
  }

  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void barrier() override {
    // All-reduce one word, then wait on the host for it: every rank has reached the barrier and
    // its earlier work on the compute stream (which the collective waited for) is done. The
    // word's value is meaningless (it grows, and may wrap, with every barrier).
    run("barrier", [&] {
      NCCL_CHECK(ncclAllReduce(barrier_word_.raw(), barrier_word_.raw(), 1, ncclInt32, ncclSum,
                               comm_, stream_));
    });
    poll(comm_, "barrier", bootstrap_, timeout_, device_, [&](ncclResult_t) {
      const cudaError_t status = cudaEventQuery(done_);
      if (status == cudaErrorNotReady) return false;
      if (status != cudaSuccess) {
        cudaGetLastError();
        fail_job(comm_, bootstrap_,
                 text("barrier on rank ", rank_, " (cuda:", device_,
                      "): the device failed: ", cudaGetErrorString(status)));
      }
      return true;
    });
  }

  void broadcast(Tensor& tensor, int root) override {
    const auto all = exchange(detail::describe_broadcast(tensor, root), {&tensor});
    detail::check_broadcast(all, size_, root, Memory::Device);
    check_devices("broadcast", all);
    if (tensor.nbytes() == 0) return;
    run("broadcast", [&] {
      NCCL_CHECK(ncclBroadcast(tensor.raw(), tensor.raw(), tensor.nbytes(), ncclUint8, root, comm_,
                               stream_));
    });
  }

  void all_gather(const Tensor& in, Tensor& out) override {
    const auto all = exchange(detail::describe_in_out(in, out), {&in, &out});
    const Meta want = detail::check_all_gather(all, size_, Memory::Device);
    check_devices("all_gather", all);
    if (!out.defined()) out = Tensor::empty(want.shape, want.dtype, ctx_.device());
    if (in.nbytes() == 0) return;
    run("all_gather", [&] {
      NCCL_CHECK(ncclAllGather(in.raw(), out.raw(), in.nbytes(), ncclUint8, comm_, stream_));
    });
  }

  void all_gather_start(const Tensor& in, Tensor& out, int slot) override {
    WB_CHECK(slot == 0 || slot == 1, "all_gather_start: slot ", slot, " (0 or 1)");
    const auto all = exchange(detail::describe_in_out(in, out), {&in, &out});
    const Meta want = detail::check_all_gather(all, size_, Memory::Device);
    check_devices("all_gather", all);
    if (!out.defined()) out = Tensor::empty(want.shape, want.dtype, ctx_.device());
    if (in.nbytes() == 0) return;
    queue(
        "all_gather",
        [&] {
          NCCL_CHECK(ncclAllGather(in.raw(), out.raw(), in.nbytes(), ncclUint8, comm_, stream_));
        },
        gathered_[slot]);
  }

  void all_gather_join(int slot) override {
    WB_CHECK(slot == 0 || slot == 1, "all_gather_join: slot ", slot, " (0 or 1)");
    join("all_gather", gathered_[slot]);
  }

  void all_to_all(const Tensor& in, Tensor& out) override { queue_all_to_all(in, out, nullptr); }

  void all_to_all_start(const Tensor& in, Tensor& out, int slot) override {
    check_all_to_all_slot("all_to_all_start", slot);
    queue_all_to_all(in, out, exchanged_[slot]);
  }

  void all_to_all_join(int slot) override {
    check_all_to_all_slot("all_to_all_join", slot);
    join("all_to_all", exchanged_[slot]);
  }

  void all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_counts, Tensor& out,
                    const std::vector<int64_t>& recv_counts) override {
    const auto all = exchange(
        detail::describe_all_to_all_v(in, send_counts, out, recv_counts, size_), {&in, &out});
    const detail::AllToAllV checked = detail::check_all_to_all_v(all, size_, Memory::Device);
    check_devices("all_to_all_v", all);
    if (!out.defined()) {
      out = Tensor::empty(detail::all_to_all_v_output_shape(checked, recv_counts),
                          checked.rows.dtype, ctx_.device());
    }
    send_receive("all_to_all_v", in, send_counts, out, recv_counts,
                 detail::row_bytes(checked.rows));
  }

  void all_reduce_sum(Tensor& tensor) override {
    const auto all = exchange(detail::describe_tensor(tensor), {&tensor});
    const Meta m = detail::check_all_reduce(all, size_, Memory::Device);
    check_devices("all_reduce_sum", all);
    const auto count = static_cast<size_t>(tensor.numel());
    if (count == 0) return;
    if (detail::sums_natively(m.dtype)) {
      run("all_reduce_sum", [&] {
        NCCL_CHECK(ncclAllReduce(tensor.raw(), tensor.raw(), count, nccl_type(m.dtype), ncclSum,
                                 comm_, stream_));
      });
      return;
    }
    // bf16, f16 and fp8 add in fp32 and round once at the end, as comm.h promises (NCCL's own
    // bf16 sum would round after every hop of the ring). Allocated here, before the collective
    // waits on the compute stream, and released after it is joined back (stream-ordered memory).
    Tensor wide = Tensor::empty(tensor.shape(), DType::F32, ctx_.device());
    const int sm_count = ctx_.cuda_resources()->sm_count();
    run("all_reduce_sum", [&] {
      core::cuda::convert_async(tensor.raw(), m.dtype, wide.raw(), DType::F32, count, sm_count,
                                stream_);
      NCCL_CHECK(
          ncclAllReduce(wide.raw(), wide.raw(), count, ncclFloat32, ncclSum, comm_, stream_));
    });
    // Rounded back on the compute stream, after the join: a non-blocking communicator may put
    // the all-reduce on the stream only once run() has seen it queued, so a kernel queued behind
    // it inside run() could overtake it.
    DeviceGuard guard(device_);
    core::cuda::convert_async(wide.raw(), DType::F32, tensor.raw(), m.dtype, count, sm_count,
                              ctx_.cuda_resources()->stream());
  }

  std::unique_ptr<Comm> split(int color, int key) const override {
    // NCCL first, with every rank taking part (NCCL_SPLIT_NOCOLOR for a negative colour), then the
    // bootstrap, whose split throws on the ranks with a negative colour after the collective part,
    // as the MPI backend does. Both order the new ranks by key, then by old rank.
    ncclComm_t child = nullptr;
    {
      DeviceGuard guard(device_);
      ncclConfig_t config = non_blocking_config();
      try {
        NCCL_CHECK(
            ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, &config));
      } catch (const Error& e) {
        fail_job(comm_, bootstrap_, e.what());
      }
      wait_ready(comm_, "ncclCommSplit", bootstrap_, timeout_, device_);
      if (child != nullptr) wait_ready(child, "ncclCommSplit", bootstrap_, timeout_, device_);
    }
    std::unique_ptr<Comm> sub;
    try {
      sub = bootstrap_.split(color, key);
    } catch (...) {
      if (child != nullptr) ncclCommDestroy(child);
      throw;
    }
    WB_CHECK(child != nullptr, "split: NCCL gave no communicator for color ", color);
    int child_rank = -1;
    NCCL_CHECK(ncclCommUserRank(child, &child_rank));
    if (child_rank != sub->rank()) {
      fail_job(child, bootstrap_,
               text("split: NCCL ranks this rank ", child_rank, " but MPI ", sub->rank()));
    }
    Comm& sub_ref = *sub;
    return std::make_unique<NcclComm>(sub_ref, std::move(sub), ctx_, child, timeout_);
  }

  [[noreturn]] void abort(const std::string& message) const override {
    bootstrap_.abort(message);
    std::_Exit(1);  // as in fail_job
  }

 private:
  // Every rank's description of its arguments, in rank order, from the bootstrap. Two entries are
  // appended to `local`: the index of a device other than this communicator's that one of
  // `tensors` is on (-1 for none), and this communicator's device.
  std::vector<int64_t> exchange(std::vector<int64_t> local,
                                std::initializer_list<const Tensor*> tensors) const {
    int64_t wrong_device = -1;
    for (const Tensor* t : tensors) {
      if (t->defined() && t->device().is_cuda() && t->device().index != device_) {
        wrong_device = t->device().index;
        break;
      }
    }
    local.push_back(wrong_device);
    local.push_back(device_);
    const Tensor in = Tensor::from_vector(local, {static_cast<int64_t>(local.size())});
    Tensor out;
    bootstrap_.all_gather(in, out);
    const auto* p = out.data<int64_t>();
    return std::vector<int64_t>(p, p + out.numel());
  }

  void check_devices(const char* op, const std::vector<int64_t>& all) const {
    const size_t stride = detail::record_length(all, size_);
    for (int r = 0; r < size_; ++r) {
      const int64_t wrong = all[r * stride + stride - 2];
      if (wrong >= 0) {
        throw make_error(op, ": rank ", r, " passes a tensor on cuda:", wrong,
                         " but its NCCL communicator runs on cuda:", all[r * stride + stride - 1]);
      }
    }
  }

  // Queues `queue_ops` (NCCL calls on stream_) between the two stream joins described in
  // nccl_comm.h, waiting for the non-blocking communicator to have queued them. A failure here
  // would leave the other ranks waiting inside the collective, so it ends the job.
  template <typename F>
  void run(const char* op, F&& queue_ops) {
    queue(op, queue_ops, done_);
    join(op, done_);
  }

  // The first half of run(): the communication stream waits for the compute stream's work so
  // far, then the operations are queued and their completion recorded in `finished`.
  template <typename F>
  void queue(const char* op, F&& queue_ops, cudaEvent_t finished) {
    DeviceGuard guard(device_);
    const cudaStream_t compute = ctx_.cuda_resources()->stream();
    try {
      CUDA_CHECK(cudaEventRecord(ready_, compute));
      CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
      queue_ops();
    } catch (const Error& e) {
      fail_job(comm_, bootstrap_, text(op, " on rank ", rank_, ": ", e.what()));
    }
    wait_ready(comm_, op, bootstrap_, timeout_, device_);
    try {
      CUDA_CHECK(cudaEventRecord(finished, stream_));
    } catch (const Error& e) {
      fail_job(comm_, bootstrap_, text(op, " on rank ", rank_, ": ", e.what()));
    }
  }

  // The second half: the compute stream waits for `finished`.
  void join(const char* op, cudaEvent_t finished) {
    DeviceGuard guard(device_);
    try {
      CUDA_CHECK(cudaStreamWaitEvent(ctx_.cuda_resources()->stream(), finished, 0));
    } catch (const Error& e) {
      fail_job(comm_, bootstrap_, text(op, " on rank ", rank_, ": ", e.what()));
    }
  }

  // all_to_all, joined at once (`finished` null) or recording its completion in `finished` for
  // all_to_all_join.
  void queue_all_to_all(const Tensor& in, Tensor& out, cudaEvent_t finished) {
    const auto all = exchange(detail::describe_in_out(in, out), {&in, &out});
    const Meta first = detail::check_all_to_all(all, size_, Memory::Device);
    check_devices("all_to_all", all);
    if (!out.defined()) out = Tensor::empty(first.shape, first.dtype, ctx_.device());
    const std::vector<int64_t> counts(size_, first.shape[0] / size_);
    send_receive("all_to_all", in, counts, out, counts, detail::row_bytes(first), finished);
  }

  // Rows in rank order to and from every peer, as grouped point-to-point transfers of bytes.
  // Zero counts queue nothing; the checks made both sides agree on them. Joined at once unless
  // `finished` is given (then it records their completion, as queue()).
  void send_receive(const char* op, const Tensor& in, const std::vector<int64_t>& send_counts,
                    Tensor& out, const std::vector<int64_t>& recv_counts, size_t row_bytes,
                    cudaEvent_t finished = nullptr) {
    if (row_bytes == 0) return;
    const auto* send = static_cast<const char*>(in.raw());
    auto* receive = static_cast<char*>(out.raw());
    auto transfers = [&] {
      NCCL_CHECK(ncclGroupStart());
      size_t send_at = 0, receive_at = 0;
      for (int peer = 0; peer < size_; ++peer) {
        const size_t send_bytes = static_cast<size_t>(send_counts[peer]) * row_bytes;
        const size_t receive_bytes = static_cast<size_t>(recv_counts[peer]) * row_bytes;
        if (send_bytes > 0) {
          NCCL_CHECK(ncclSend(send + send_at, send_bytes, ncclUint8, peer, comm_, stream_));
        }
        if (receive_bytes > 0) {
          NCCL_CHECK(
              ncclRecv(receive + receive_at, receive_bytes, ncclUint8, peer, comm_, stream_));
        }
        send_at += send_bytes;
        receive_at += receive_bytes;
      }
      NCCL_CHECK(ncclGroupEnd());
    };
    if (finished != nullptr) {
      queue(op, transfers, finished);
    } else {
      run(op, transfers);
    }
  }

  void release_cuda() noexcept {
    core::cuda::with_device_noexcept(device_, [&] {
      if (done_ != nullptr) cudaEventDestroy(done_);
      for (cudaEvent_t& e : gathered_) {
        if (e != nullptr) cudaEventDestroy(e);
        e = nullptr;
      }
      for (cudaEvent_t& e : exchanged_) {
        if (e != nullptr) cudaEventDestroy(e);
        e = nullptr;
      }
      if (ready_ != nullptr) cudaEventDestroy(ready_);
      if (stream_ != nullptr) cudaStreamDestroy(stream_);
    });
    done_ = ready_ = nullptr;
    stream_ = nullptr;
  }

  Comm& bootstrap_;  // not const: its collectives carry the argument checks
  std::unique_ptr<Comm> owned_bootstrap_;
  core::Context ctx_;  // keeps the compute stream alive
  ncclComm_t comm_;
  double timeout_;
  int rank_;
  int size_;
  int device_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // on the compute stream: inputs ready
  cudaEvent_t done_ = nullptr;   // on the communication stream: collective finished
  cudaEvent_t gathered_[2] = {nullptr, nullptr};  // all_gather_start's, per slot
  cudaEvent_t exchanged_[kAllToAllSlots] = {};    // all_to_all_start's, per slot
  Tensor barrier_word_;  // after ctx_: released while the stream still exists
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, const core::Context& ctx) {
  // Every rank's setup, checked on every rank before NCCL starts, so that all throw alike.
  const double timeout = timeout_from_environment();
  const std::vector<int64_t> local{ctx.device().is_cuda() ? 1 : 0, timeout > 0 ? 1 : 0};
  Tensor setup;
  bootstrap.all_gather(Tensor::from_vector(local, {2}), setup);
  for (int r = 0; r < bootstrap.size(); ++r) {
    if (setup.data<int64_t>()[2 * r] == 0) {
      throw make_error("make_nccl_comm: rank ", r,
                       " passes a CPU context; the NCCL communicator needs a CUDA context");
    }
    if (setup.data<int64_t>()[2 * r + 1] == 0) {
      throw make_error("make_nccl_comm: rank ", r,
                       " has an invalid WANBATCH_NCCL_TIMEOUT (a positive number of seconds)");
    }
  }

  // Rank 0's id, 128 bytes, as 16 int64 words after a flag saying whether it exists.
  constexpr int64_t kIdWords = sizeof(ncclUniqueId) / sizeof(int64_t);
  static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
  Tensor id_words = Tensor::zeros({1 + kIdWords}, DType::I64);
  std::string id_error;
  if (bootstrap.rank() == 0) {
    try {
      ncclUniqueId id{};
      NCCL_CHECK(ncclGetUniqueId(&id));
      std::memcpy(id_words.data<int64_t>() + 1, &id, sizeof id);
      id_words.data<int64_t>()[0] = 1;
    } catch (const Error& e) {
      id_error = e.what();
    }
  }
  bootstrap.broadcast(id_words, 0);
  if (id_words.data<int64_t>()[0] == 0) {
    throw make_error("make_nccl_comm: rank 0 could not create the NCCL id",
                     id_error.empty() ? std::string(" (see rank 0's error)") : ": " + id_error);
  }
  ncclUniqueId id{};
  std::memcpy(&id, id_words.data<int64_t>() + 1, sizeof id);

  const int device = ctx.device().index;
  ncclComm_t comm = nullptr;
  {
    DeviceGuard guard(device);
    ncclConfig_t config = non_blocking_config();
    const ncclResult_t result =
        ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config);
    if (result != ncclSuccess && result != ncclInProgress) {
      // The other ranks would wait for this one until their timeout: end the job now.
      fail_job(comm, bootstrap,
               nccl_failure("ncclCommInitRankConfig", bootstrap.rank(), device, result, comm));
    }
    wait_ready(comm, "ncclCommInitRankConfig", bootstrap, timeout, device);
  }
  return std::make_unique<NcclComm>(bootstrap, nullptr, ctx, comm, timeout);
}

}  // namespace wanbatch::parallel
