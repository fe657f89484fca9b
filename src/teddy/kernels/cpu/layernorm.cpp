// LayerNorm over the last dim, fast path: OpenMP over rows, float accumulation in
// vectorized reductions (two-pass variance), deterministic dweight/dbias.
#include <cmath>
#include <cstdint>

#include "teddy/kernels/cpu/norm_blocks.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements
}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * C >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    const float* x = inp + static_cast<int64_t>(i) * C;  // (C)
    float* o = out + static_cast<int64_t>(i) * C;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; ++c) sum += x[c];
    const float m = sum / static_cast<float>(C);
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int c = 0; c < C; ++c) {
      const float d = x[c] - m;
      var += d * d;
    }
    const float r = 1.0f / std::sqrt(var / static_cast<float>(C) + eps);
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  NormBlocks blocks(N, C, 2);
  float* const partial = blocks.partial;  // (n_blocks, 2, C): [dweight | dbias] per block
  const bool par = static_cast<int64_t>(N) * C >= kParallelMin;

#pragma omp parallel for schedule(static) if (par)
  for (int b = 0; b < blocks.n_blocks; ++b) {
    float* pw = partial + static_cast<int64_t>(b) * 2 * C;
    float* pb = pw + C;
#pragma omp simd
    for (int c = 0; c < 2 * C; ++c) pw[c] = 0.0f;
    for (int i = blocks.row_begin(b, N); i < blocks.row_end(b, N); ++i) {
      const float* x = inp + static_cast<int64_t>(i) * C;  // (C)
      const float* d = dout + static_cast<int64_t>(i) * C;
      float* g = dinp + static_cast<int64_t>(i) * C;
      const float m = mean[i], r = rstd[i];
      float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_sum, dnorm_norm_sum)
      for (int c = 0; c < C; ++c) {
        const float dn = weight[c] * d[c];
        dnorm_sum += dn;
        dnorm_norm_sum += dn * ((x[c] - m) * r);
      }
      const float dnorm_mean = dnorm_sum / static_cast<float>(C);
      const float dnorm_norm_mean = dnorm_norm_sum / static_cast<float>(C);
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const float n = (x[c] - m) * r;
        const float dn = weight[c] * d[c];
        pb[c] += d[c];
        pw[c] += d[c] * n;
        g[c] += r * (dn - dnorm_mean - n * dnorm_norm_mean);
      }
    }
  }

  // Sum the partials in block order (parallel over channels), then add once.
#pragma omp parallel for schedule(static) if (par)
  for (int c0 = 0; c0 < 2 * C; c0 += 64) {
    const int c1 = std::min(2 * C, c0 + 64);
    for (int b = 1; b < blocks.n_blocks; ++b) {
      const float* p = partial + static_cast<int64_t>(b) * 2 * C;
#pragma omp simd
      for (int c = c0; c < c1; ++c) partial[c] += p[c];
    }
  }
#pragma omp simd
  for (int c = 0; c < C; ++c) {
    dweight[c] += partial[c];
    dbias[c] += partial[C + c];
  }
}

}  // namespace teddy::kernels::cpu
