#include "parallel/request_channel.h"

#include <mpi.h>

#include <chrono>
#include <exception>
#include <limits>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_runtime.h"

namespace wanbatch::parallel {
namespace {

constexpr int kRequestTag = 1;
constexpr int kReplyTag = 2;
constexpr int kCloseTag = 3;
// How long the idle service thread sleeps between polls: short next to an item (seconds), and
// it keeps rank 0's spare core free.
constexpr auto kPollInterval = std::chrono::microseconds(500);

int to_count(size_t size) {
  WB_CHECK(size < static_cast<size_t>(std::numeric_limits<int>::max()),
           "request channel: message of ", size, " bytes is too long");
  return static_cast<int>(size);
}

}  // namespace

struct RequestChannel::State {
  bool mpi = false;
  int rank = 0;
  Handler handler;
  MPI_Comm comm = MPI_COMM_NULL;
  std::thread server;
  bool closed = false;

  // Rank 0's service: answers requests until every client has closed.
  void serve(int clients) {
    int open = clients;
    std::string message;
    while (open > 0) {
      // Requests and closes only: rank 0's own replies travel on this communicator too.
      int flag = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kRequestTag, comm, &flag, &status);
      if (!flag) MPI_Iprobe(MPI_ANY_SOURCE, kCloseTag, comm, &flag, &status);
      if (!flag) {
        std::this_thread::sleep_for(kPollInterval);
        continue;
      }
      int count = 0;
      MPI_Get_count(&status, MPI_CHAR, &count);
      message.assign(static_cast<size_t>(count), '\0');
      MPI_Recv(message.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, comm,
               MPI_STATUS_IGNORE);
      if (status.MPI_TAG == kCloseTag) {
        --open;
        continue;
      }
      std::string reply;
      try {
        reply = handler(status.MPI_SOURCE, message);
      } catch (const std::exception& e) {
        WB_LOG(error) << "the item queue failed: " << e.what();
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      MPI_Send(reply.data(), to_count(reply.size()), MPI_CHAR, status.MPI_SOURCE, kReplyTag, comm);
    }
  }
};

bool RequestChannel::supported(const MpiRuntime& runtime) {
  if (!runtime.active()) return true;
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided >= MPI_THREAD_MULTIPLE;
}

RequestChannel::RequestChannel(const MpiRuntime& runtime, int clients, bool client, Handler handler)
    : state_(std::make_unique<State>()) {
  WB_CHECK(supported(runtime),
           "the item queue needs MPI_THREAD_MULTIPLE, which this MPI library does not provide");
  state_->mpi = runtime.active();
  state_->rank = runtime.rank();
  state_->handler = std::move(handler);
  state_->closed = !client;
  if (!state_->mpi) return;
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &state_->comm));
  if (state_->rank == 0) state_->server = std::thread([this, clients] { state_->serve(clients); });
}

RequestChannel::~RequestChannel() {
  if (!state_->mpi) return;
  close();
  if (state_->server.joinable()) state_->server.join();
  MPI_Comm_free(&state_->comm);
}

std::string RequestChannel::request(const std::string& message) {
  WB_CHECK(!state_->closed, "request channel: this rank is not a client, or has closed");
  if (!state_->mpi) return state_->handler(0, message);
  MPI_CHECK(
      MPI_Send(message.data(), to_count(message.size()), MPI_CHAR, 0, kRequestTag, state_->comm));
  MPI_Status status;
  MPI_CHECK(MPI_Probe(0, kReplyTag, state_->comm, &status));
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string reply(static_cast<size_t>(count), '\0');
  MPI_CHECK(MPI_Recv(reply.data(), count, MPI_CHAR, 0, kReplyTag, state_->comm, MPI_STATUS_IGNORE));
  return reply;
}

void RequestChannel::close() {
  if (state_->closed) return;
  state_->closed = true;
  if (state_->mpi) MPI_Send(nullptr, 0, MPI_CHAR, 0, kCloseTag, state_->comm);
}

}  // namespace wanbatch::parallel
