// MPI_CHECK: the one check for MPI return codes. A failed call throws wanbatch::Error naming the
// call, the source file and line, the world rank and MPI's own error string. Only communicators
// with MPI_ERRORS_RETURN report errors this way; on MPI_COMM_WORLD's default handler MPI aborts
// before the check sees anything. The NCCL check names the world rank the same way.
#pragma once

namespace wanbatch::parallel::detail {
// The world rank for messages: the MPI rank while MPI runs, else -1.
int world_rank_or_unknown();

// Throws for any code but MPI_SUCCESS; `call` is the stringised call (its name is cut from it).
void check_mpi(int code, const char* call, const char* file, int line);
}  // namespace wanbatch::parallel::detail

#define MPI_CHECK(call) ::wanbatch::parallel::detail::check_mpi((call), #call, __FILE__, __LINE__)
