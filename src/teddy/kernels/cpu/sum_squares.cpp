// kernels::cpu sum_squares: OpenMP over fixed contiguous chunks, double
// accumulation, partials combined in chunk order, so the result is identical
// for a given thread count (an OpenMP reduction clause combines in arrival order).
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int kMaxChunks = 256;       // partials live on the stack: no allocation
constexpr int64_t kMinChunk = 1 << 16;  // below this, threads cost more than they save
}  // namespace

double sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t by_size = (n + kMinChunk - 1) / kMinChunk;
  const int chunks = static_cast<int>(std::min<int64_t>({by_size, omp_get_max_threads(), kMaxChunks}));
  double partial[kMaxChunks];
#pragma omp parallel for schedule(static) num_threads(chunks)
  for (int k = 0; k < chunks; ++k) {
    const int64_t lo = n * k / chunks, hi = n * (k + 1) / chunks;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[k] = s;
  }
  double total = 0.0;
  for (int k = 0; k < chunks; ++k) total += partial[k];
  return total;
}

}  // namespace teddy::kernels::cpu
