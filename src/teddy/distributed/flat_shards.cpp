#include "teddy/distributed/flat_shards.h"

#include <algorithm>

#include "teddy/core/error.h"

namespace teddy::dist {

FlatShards::FlatShards(size_t n, int world) : n_(n), world_(world) {
  if (world < 1) throw Error("FlatShards: world size must be >= 1 (got " + std::to_string(world) + ")");
  const size_t w = static_cast<size_t>(world);
  shard_ = (n + w - 1) / w;
  shard_ = (shard_ + 15) / 16 * 16;
}

Range FlatShards::range(int rank) const {
  const size_t r = static_cast<size_t>(rank);
  return {std::min(r * shard_, n_), std::min((r + 1) * shard_, n_)};
}

std::vector<size_t> FlatShards::counts(Range s) const {
  std::vector<size_t> c(static_cast<size_t>(world_));
  for (int r = 0; r < world_; ++r) {
    const Range o = range(r);
    const size_t b = std::max(o.begin, s.begin), e = std::min(o.end, s.end);
    c[static_cast<size_t>(r)] = e > b ? e - b : 0;
  }
  return c;
}

}  // namespace teddy::dist
