#pragma once
// Communicator over MPI (OpenMPI under mpirun, or Slurm's srun with PMI). MpiRuntime
// owns MPI_Init/MPI_Finalize for the process; MpiCommunicator wraps MPI_COMM_WORLD.
#include <memory>

#include "teddy/distributed/communicator.h"
#include "teddy/distributed/watchdog.h"

namespace teddy::dist {

// True when this process was started by an MPI launcher (mpirun/mpiexec, srun):
// the launcher's environment variables are present. Checked before MPI_Init so a
// plain `teddy pretrain` never touches MPI.
bool launched_by_mpi();

// Initialises MPI once for the process (MPI_THREAD_MULTIPLE where the library has it:
// the main thread and the communicator's progress thread call MPI; OpenMP threads
// only compute) and finalises it on destruction. Errors in MPI
// calls return codes (MPI_ERRORS_RETURN) that the communicator turns into Error.
class MpiRuntime {
 public:
  MpiRuntime();
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  // A communicator over all ranks of the job. With timeout_s > 0 a watchdog
  // (watchdog.h) reports a communication call that has waited longer than that: a
  // peer that hangs without dying would otherwise block every rank forever. It
  // calls on_hang on the watchdog thread with a HungCall (the call, this rank, the
  // world size, the seconds waited) and prints nothing; when the handler returns, or
  // with none, it ends the job with exit code 3 (kHangExitCode: MPI_Abort under
  // MPI_THREAD_MULTIPLE, else this process ends and the launcher tears the job down
  // as for any failed rank). Make it longer than the slowest legitimate wait (rank 0
  // writing a checkpoint while the others wait).
  // With progress_thread (and MPI_THREAD_MULTIPLE), a thread tests the started
  // (non-blocking) collectives every 20 us while they are open, so they progress
  // while this thread computes; otherwise they move only inside test() and wait().
  std::unique_ptr<Communicator> world(double timeout_s = 0, bool progress_thread = true, HangHandler on_hang = {}) const;
  bool thread_multiple() const { return thread_multiple_; }

 private:
  bool thread_multiple_ = false;
};

}  // namespace teddy::dist
