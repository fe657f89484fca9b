// RMSNorm, fast path: OpenMP over rows, float accumulation in vectorized reductions,
// deterministic dweight.
#include <cmath>
#include <cstdint>

#include "teddy/kernels/cpu/norm_blocks.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements
}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * C >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    const float* x = inp + static_cast<int64_t>(i) * C;  // (C)
    float* o = out + static_cast<int64_t>(i) * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; ++c) ss += x[c] * x[c];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = x[c] * r * weight[c];
    if (rstd) rstd[i] = r;
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  NormBlocks blocks(N, C, 1);
  float* const partial = blocks.partial;  // (n_blocks, C) dweight per block
  const bool par = static_cast<int64_t>(N) * C >= kParallelMin;

#pragma omp parallel for schedule(static) if (par)
  for (int b = 0; b < blocks.n_blocks; ++b) {
    float* pw = partial + static_cast<int64_t>(b) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) pw[c] = 0.0f;
    for (int i = blocks.row_begin(b, N); i < blocks.row_end(b, N); ++i) {
      const float* x = inp + static_cast<int64_t>(i) * C;  // (C)
      const float* d = dout + static_cast<int64_t>(i) * C;
      float* g = dinp + static_cast<int64_t>(i) * C;
      const float r = rstd[i];
      float dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_norm_sum)
      for (int c = 0; c < C; ++c) dnorm_norm_sum += weight[c] * d[c] * x[c];
      const float dnorm_norm_mean = dnorm_norm_sum * r / static_cast<float>(C);
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float n = x[c] * r;
        pw[c] += d[c] * n;
        g[c] += r * (weight[c] * d[c] - n * dnorm_norm_mean);
      }
    }
  }

#pragma omp parallel for schedule(static) if (par)
  for (int c0 = 0; c0 < C; c0 += 64) {
    const int c1 = std::min(C, c0 + 64);
    for (int b = 1; b < blocks.n_blocks; ++b) {
      const float* p = partial + static_cast<int64_t>(b) * C;
#pragma omp simd
      for (int c = c0; c < c1; ++c) partial[c] += p[c];
    }
  }
#pragma omp simd
  for (int c = 0; c < C; ++c) dweight[c] += partial[c];
}

}  // namespace teddy::kernels::cpu
