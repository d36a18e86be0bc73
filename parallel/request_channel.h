// A service on rank 0 that answers other ranks' requests while rank 0 goes on with its own work:
// what the dynamic item queue needs (DESIGN.md "jobs": rank 0 hands out the next item when a group
// finishes). A thread on rank 0 receives each request, calls the handler and sends back its reply;
// requests and replies are strings (the queue speaks JSON). Over MPI it uses its own duplicate of
// MPI_COMM_WORLD, so its messages never meet the collectives' (and needs MPI_THREAD_MULTIPLE,
// which MpiRuntime asks for). Without MPI (one process) the handler is called directly.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace wanbatch::parallel {

class MpiRuntime;

class RequestChannel {
 public:
  // Called on rank 0's service thread, one request at a time, with the asking rank.
  using Handler = std::function<std::string(int rank, const std::string& request)>;

  // Collective over the world. `clients` ranks (rank 0 may be one of them), those passing `client`
  // true, will each send requests and then close(); `handler` is used on rank 0 only. A handler
  // that throws ends the job on every rank (a queue that cannot answer cannot go on).
  RequestChannel(const MpiRuntime& runtime, int clients, bool client, Handler handler);
  // Closes this client's side if it has not; on rank 0, then waits until every client has closed.
  ~RequestChannel();
  RequestChannel(const RequestChannel&) = delete;
  RequestChannel& operator=(const RequestChannel&) = delete;

  // Sends `request` to rank 0 and waits for the reply.
  std::string request(const std::string& message);
  // This client sends nothing more.
  void close();

  // Whether the MPI library gave the thread support the service needs (always true without MPI).
  static bool supported(const MpiRuntime& runtime);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace wanbatch::parallel
