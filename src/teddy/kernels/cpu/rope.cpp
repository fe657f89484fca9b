// Rotary position embedding (HF rotate_half convention), fast path. The HS/2 inverse
// frequencies come from the caller (the model's table, double); each row's cos/sin table (HS/2 pairs, shared by its n_heads heads) is computed
// per row in double with a vectorized sincos, so angles stay exact at long positions.
#include <cmath>
#include <cstdint>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/cpu/vec_math.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements
constexpr int kMaxHalf = 512;              // HS <= 1024: per-row tables live on the stack

// dst = R(sign * angle) src (or dst += when Accumulate). dst may equal src: each
// (j, j + HS/2) pair is read fully before it is written, and pairs are disjoint.
template <bool Accumulate>
void rope_rotate(float* dst, const float* src, const int32_t* pos, int N, int row_stride, int n_heads,
                 int HS, const double* inv_freq, float sign) {
  TEDDY_CHECK(HS % 2 == 0 && HS > 0 && HS / 2 <= kMaxHalf,
              "rope: head size must be even and at most " + std::to_string(2 * kMaxHalf) +
                  " (got " + std::to_string(HS) + ")");
  const int half = HS / 2;

#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * n_heads * HS >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    float cos_t[kMaxHalf], sin_t[kMaxHalf];  // (HS/2) for this row's position
    const double p = static_cast<double>(pos[i]);
#pragma omp simd
    for (int j = 0; j < half; ++j) {
      double s, c;
      sincos_approx(p * inv_freq[j], s, c);
      cos_t[j] = static_cast<float>(c);
      sin_t[j] = sign * static_cast<float>(s);
    }
    for (int h = 0; h < n_heads; ++h) {
      const int64_t off = static_cast<int64_t>(i) * row_stride + static_cast<int64_t>(h) * HS;
      const float* x = src + off;  // (HS)
      float* o = dst + off;
#pragma omp simd
      for (int j = 0; j < half; ++j) {
        const float x0 = x[j], x1 = x[j + half];
        const float y0 = x0 * cos_t[j] - x1 * sin_t[j];
        const float y1 = x1 * cos_t[j] + x0 * sin_t[j];
        if constexpr (Accumulate) {
          o[j] += y0;
          o[j + half] += y1;
        } else {
          o[j] = y0;
          o[j + half] = y1;
        }
      }
    }
  }
}

}  // namespace

void rope_forward(float* out, const float* inp, const int32_t* pos, int N, int row_stride, int n_heads,
                  int HS, const double* inv_freq) {
  rope_rotate<false>(out, inp, pos, N, row_stride, n_heads, HS, inv_freq, 1.0f);
}

void rope_backward(float* dinp, const float* dout, const int32_t* pos, int N, int row_stride, int n_heads,
                   int HS, const double* inv_freq) {
  rope_rotate<true>(dinp, dout, pos, N, row_stride, n_heads, HS, inv_freq, -1.0f);
}

}  // namespace teddy::kernels::cpu
