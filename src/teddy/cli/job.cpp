// How the training commands end on an error under mpirun (commands.h: run_on_world).
#include <cstdio>
#include <exception>

#include "teddy/cli/commands.h"
#include "teddy/distributed/world.h"

namespace teddy::cli {

int run_on_world(dist::World& world, const std::function<void()>& job) {
  try {
    job();
  } catch (const std::exception& e) {
    if (world.size() == 1) throw;
    // One failed rank must not leave the others blocked in a collective: say which
    // rank failed, then end the whole job.
    std::fprintf(stderr, "teddy: error on rank %d of %d: %s\n", world.rank(), world.size(), e.what());
    std::fflush(stderr);
    world.abort(1, e.what());
  }
  return 0;
}

}  // namespace teddy::cli
