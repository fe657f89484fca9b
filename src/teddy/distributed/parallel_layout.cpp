#include "teddy/distributed/parallel_layout.h"

#include "teddy/core/error.h"

namespace teddy::dist {

void ParallelLayout::validate(int world_size) const {
  auto axis = [](const char* name, int v) {
    if (v < 1) throw ConfigError(std::string("dist.") + name + ": must be >= 1 (got " + std::to_string(v) + ")");
  };
  axis("dp", dp);
  axis("tp", tp);
  axis("pp", pp);
  axis("cp", cp);
  for (auto [name, v] : {std::pair{"tp", tp}, std::pair{"pp", pp}, std::pair{"cp", cp}})
    if (v != 1) throw ConfigError(std::string("dist.") + name + ": only 1 is supported yet (got " + std::to_string(v) + ")");
  if (zero < 0 || zero > 3) throw ConfigError("dist.zero: must be 0, 1, 2 or 3 (got " + std::to_string(zero) + ")");
  if (world() != world_size)
    throw ConfigError("parallel layout " + describe() + " needs " + std::to_string(world()) +
                      " ranks (dp*tp*pp*cp) but the job has " + std::to_string(world_size));
}

ParallelLayout ParallelLayout::data_parallel(int world_size, int zero_stage) {
  ParallelLayout l;
  l.dp = world_size;
  l.zero = zero_stage;
  l.validate(world_size);
  return l;
}

std::string ParallelLayout::describe() const {
  return "dp=" + std::to_string(dp) + " tp=" + std::to_string(tp) + " pp=" + std::to_string(pp) +
         " cp=" + std::to_string(cp) + " zero=" + std::to_string(zero);
}

}  // namespace teddy::dist
