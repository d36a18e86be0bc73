// MPI start-up and shutdown for the process: initialises MPI when the program was launched by an
// MPI launcher (mpirun, srun), so a plain `wanbatch inspect` needs no MPI environment at all.
#pragma once

namespace wanbatch::parallel {

// Whether the environment says we run under an MPI launcher (Open MPI, PMI/PMIx, SLURM).
bool launched_by_mpi();

// RAII owner of MPI_Init / MPI_Finalize. With `force` false, MPI starts only under a launcher; a
// one-process run then reports rank 0 of 1. In a process where MPI is already initialised it
// joins, and leaves MPI_Finalize to whoever initialised it.
class MpiRuntime {
 public:
  explicit MpiRuntime(bool force = false);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  bool active() const { return active_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every rank (MPI_Abort) with `code`; used when one rank fails in a collective section.
  [[noreturn]] void abort(int code) const;

 private:
  bool active_ = false;
  bool owns_init_ = false;
  int rank_ = 0;
  int size_ = 1;
};

// This process's rank among those on its node, from the launcher's environment (Open MPI, SLURM,
// MPICH/Hydra), or 0 outside a launcher: which GPU of the node a rank takes.
int node_local_rank();

// The rank of this process as the launcher's environment gives it (before or without MPI_Init),
// or -1 outside a launcher. Logging tags lines with it.
int environment_rank();

}  // namespace wanbatch::parallel
