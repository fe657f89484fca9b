// Residual add and gradient accumulation, fast path (memory bound).
#include <cstdint>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 16;  // elements
}  // namespace

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void accumulate(float* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace teddy::kernels::cpu
