// The NCCL backend of Comm: collectives on CUDA tensors of one device per rank, with the same
// contract as the MPI backend (comm.h), including the argument check every rank runs before any
// data moves (exchanged over the MPI bootstrap communicator, parallel/collective_check.h).
//
// Streams and ordering. NCCL runs on a communication stream of its own (high priority, created
// per communicator). Each collective
//   1. records an event on the Context's compute stream and makes the communication stream wait
//      on it, so the inputs written by earlier ops are ready;
//   2. queues the NCCL operation(s) on the communication stream;
//   3. records an event on the communication stream and makes the compute stream wait on it, so
//      later ops see the results.
// The calls return once the work is queued; nothing waits on the host except barrier() (and the
// argument check, an MPI exchange of a few bytes). On the compute stream alone a collective thus
// runs between the ops queued before and after it; it overlaps work on other streams (a weight
// copy, a second compute stream). all_gather_start / all_gather_join and all_to_all_start /
// all_to_all_join split step 3 off: the compute stream joins only when asked, so a weight
// prefetch or a Ulysses exchange overlaps the compute stream too. Every slot has its own event,
// and the collectives of all slots queue one after another on the communication stream.
// Because the compute stream always joins the collective (at once, or at the join), its tensors
// may be released right after the call or the join (device memory is stream-ordered on the
// compute stream, core/cuda/runtime.cu).
//
// Failure. The communicator is non-blocking (ncclConfig_t::blocking = 0): every host-side wait
// (initialization, queuing a collective, split, barrier, destruction) polls
// ncclCommGetAsyncError with a timeout, WANBATCH_NCCL_TIMEOUT seconds (default 600). On an NCCL
// error or a timeout the rank aborts the communicator (ncclCommAbort) and ends the job through the
// bootstrap (MPI_Abort), with a message naming the rank, the operation and NCCL's error, so a dead
// or failed rank ends the job instead of hanging it. A collective that hangs on the GPU (a peer
// that died mid-transfer) is detected at the next host-side wait (barrier) or by the launcher.
//
// Requires a build with CUDA (WANBATCH_HAVE_CUDA).
#pragma once

#include <memory>

#include "core/context.h"
#include "parallel/comm.h"

namespace wanbatch::parallel {

// Collective over `bootstrap` (an MPI communicator over the same ranks, in the same order, which
// must outlive the result): rank 0 creates the NCCL id and broadcasts it through `bootstrap`,
// then every rank joins the NCCL communicator on ctx's device. Each rank needs its own device
// (NCCL refuses two ranks on one GPU). Every tensor passed to the result must be on ctx's device;
// its collectives are ordered on ctx's stream as described above. split() returns communicators
// of the same kind, each owning a split of `bootstrap`.
std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, const core::Context& ctx);

}  // namespace wanbatch::parallel
