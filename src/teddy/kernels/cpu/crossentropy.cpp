// kernels::cpu crossentropy: fused softmax + loss + gradient, one row per
// OpenMP iteration. Per row: max, then exp(x - max) (stored into dlogits when
// wanted) and its sum, then scale in place. A 50k-column row (200 KB) stays in
// L2 across the passes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/cpu/vec_math.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/crossentropy.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int kSumBlock = 512;  // columns per float partial sum of exp()
}  // namespace

double crossentropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                     const int32_t* targets, int N, int V, int Vp, int ignore_index,
                                     float dloss) {
  TEDDY_CHECK(losses != nullptr, "crossentropy: losses must not be null");
  TEDDY_CHECK(V > 0 && V <= Vp, "crossentropy: need 0 < V <= Vp (V=" + std::to_string(V) +
                                    ", Vp=" + std::to_string(Vp) + ")");
  // Validate before the parallel region: an exception must not escape it.
  ref::crossentropy_check_targets(targets, N, V, ignore_index);

#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const float* x = logits + static_cast<int64_t>(i) * Vp;  // (Vp)
    float* dx = dlogits ? dlogits + static_cast<int64_t>(i) * Vp : nullptr;
    const int32_t t = targets[i];
    if (t == ignore_index) {
      losses[i] = 0.0f;
      if (dx) std::memset(dx, 0, sizeof(float) * Vp);
      continue;
    }
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; ++j) m = x[j] > m ? x[j] : m;
    const float xt = x[t];  // read before dx (which may alias x) is overwritten
    // Up to ~50k positive terms: float partial sums over blocks (vectorizes well),
    // blocks summed in double (keeps the loss accurate).
    double s = 0.0;
    if (dx) {
      for (int j0 = 0; j0 < V; j0 += kSumBlock) {
        const int j1 = std::min(j0 + kSumBlock, V);
        float sb = 0.0f;
#pragma omp simd reduction(+ : sb)
        for (int j = j0; j < j1; ++j) {
          const float e = exp_approx(x[j] - m);
          dx[j] = e;
          sb += e;
        }
        s += static_cast<double>(sb);
      }
      const float scale = static_cast<float>(static_cast<double>(dloss) / s);
#pragma omp simd
      for (int j = 0; j < V; ++j) dx[j] *= scale;
      dx[t] -= dloss;
      for (int j = V; j < Vp; ++j) dx[j] = 0.0f;
    } else {
      for (int j0 = 0; j0 < V; j0 += kSumBlock) {
        const int j1 = std::min(j0 + kSumBlock, V);
        float sb = 0.0f;
#pragma omp simd reduction(+ : sb)
        for (int j = j0; j < j1; ++j) sb += exp_approx(x[j] - m);
        s += static_cast<double>(sb);
      }
    }
    losses[i] = static_cast<float>(std::log(s) + static_cast<double>(m) -
                                   static_cast<double>(xt));
  }
  // Sum in row order after the loop: deterministic, unlike an OpenMP reduction.
  double total = 0.0;
  for (int i = 0; i < N; ++i) total += static_cast<double>(losses[i]);
  return total;
}

}  // namespace teddy::kernels::cpu
