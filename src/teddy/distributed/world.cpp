#include "teddy/distributed/world.h"

#include <cstdlib>

namespace teddy::dist {

std::unique_ptr<World> World::from_environment(double timeout_s, HangHandler on_hang) {
  std::unique_ptr<World> w(new World());
  if (launched_by_mpi()) {
    w->mpi_ = std::make_unique<MpiRuntime>();
    w->comm_ = w->mpi_->world(timeout_s, true, std::move(on_hang));
  }
  return w;
}

World::~World() = default;

void World::barrier() {
  if (comm_) comm_->barrier();
}

void World::abort(int code, const std::string& why) {
  if (comm_) comm_->abort(code, why);
  std::_Exit(code);
}

}  // namespace teddy::dist
