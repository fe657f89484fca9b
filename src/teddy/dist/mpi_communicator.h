#pragma once
// Communicator over MPI (OpenMPI under mpirun, or Slurm's srun with PMI). MpiRuntime
// owns MPI_Init/MPI_Finalize for the process; MpiCommunicator wraps MPI_COMM_WORLD.
#include <memory>

#include "teddy/dist/communicator.h"

namespace teddy::dist {

// True when this process was started by an MPI launcher (mpirun/mpiexec, srun):
// the launcher's environment variables are present. Checked before MPI_Init so a
// plain `teddy pretrain` never touches MPI.
bool launched_by_mpi();

// Initialises MPI once for the process (MPI_THREAD_FUNNELED: only the main thread
// calls MPI; OpenMP threads compute) and finalises it on destruction. Errors in MPI
// calls return codes (MPI_ERRORS_RETURN) that the communicator turns into Error.
class MpiRuntime {
 public:
  MpiRuntime();
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  // A communicator over all ranks of the job.
  std::unique_ptr<Communicator> world() const;
};

}  // namespace teddy::dist
