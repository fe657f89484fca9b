#include "teddy/kernels/context.h"

#include <omp.h>

namespace teddy {

ThreadScope::ThreadScope(const Context& ctx) {
  if (ctx.threads <= 0) return;
  const int now = omp_get_max_threads();
  if (now == ctx.threads) return;
  prev_ = now;
  omp_set_num_threads(ctx.threads);
}

ThreadScope::~ThreadScope() {
  if (prev_ > 0) omp_set_num_threads(prev_);
}

}  // namespace teddy
