#pragma once
// Where a training command runs: every rank of an mpirun / srun job (MPI initialised
// here, a communicator over all ranks), or one plain process (no MPI at all, no
// communicator: the trainer runs the engine over its own SelfCommunicator).
#include <memory>
#include <string>

#include "teddy/distributed/communicator.h"
#include "teddy/distributed/mpi_communicator.h"

namespace teddy::dist {

class World {
 public:
  // MPI when this process was started by a launcher (launched_by_mpi()), else one
  // process. timeout_s: the watchdog on every communication call ([dist] timeout_s;
  // 0: none), which reports a hung call to on_hang and then ends the job
  // (MpiRuntime::world, watchdog.h). One process has no watchdog: nothing to wait for.
  static std::unique_ptr<World> from_environment(double timeout_s, HangHandler on_hang = {});
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  Communicator* comm() { return comm_.get(); }  // nullptr: one process
  void barrier();
  // Ends every rank of the job now (MPI_Abort; one process: exits) with `code`: what
  // a caller does when this rank failed, so that no other rank waits forever in a
  // collective. The caller reports why first. Callable from any thread (a
  // HangHandler's: the watchdog thread).
  [[noreturn]] void abort(int code, const std::string& why);

 private:
  World() = default;
  std::unique_ptr<MpiRuntime> mpi_;
  std::unique_ptr<Communicator> comm_;  // declared after mpi_: destroyed before MPI is finalised
};

}  // namespace teddy::dist
