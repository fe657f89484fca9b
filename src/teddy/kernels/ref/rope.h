#pragma once
// Reference rotary position embedding, LLaMA / HF "rotate_half" convention: within
// each head the pair (x[j], x[j + HS/2]) is rotated by angle = pos * inv_freq[j], with
// inv_freq the model's (HS/2) table (model/rope_freqs.h; theta^(-2j/HS) unscaled).
// Angles and their sin/cos are computed in double.
#include <cmath>
#include <cstdint>
#include <string>

#include "teddy/core/error.h"

namespace teddy::kernels::ref {

// sign = +1: forward rotation R(angle); sign = -1: inverse R(-angle). Accumulating
// (dst += R x) or assigning (dst = R x). x may equal dst when assigning.
template <class S>
void rope_rotate_t(S* dst, const S* src, const int32_t* pos, int N, int row_stride, int n_heads, int HS,
                   const double* inv_freq, double sign, bool accumulate) {
  TEDDY_CHECK(HS % 2 == 0, "rope: head size must be even (got " + std::to_string(HS) + ")");
  const int half = HS / 2;
  for (int i = 0; i < N; ++i) {
    for (int h = 0; h < n_heads; ++h) {
      const int64_t off = static_cast<int64_t>(i) * row_stride + static_cast<int64_t>(h) * HS;
      const S* x = src + off;
      S* o = dst + off;
      for (int j = 0; j < half; ++j) {
        const double angle = static_cast<double>(pos[i]) * inv_freq[j];
        const double c = std::cos(angle), s = sign * std::sin(angle);
        const double x0 = static_cast<double>(x[j]), x1 = static_cast<double>(x[j + half]);
        const double y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
        if (accumulate) {
          o[j] = static_cast<S>(static_cast<double>(o[j]) + y0);
          o[j + half] = static_cast<S>(static_cast<double>(o[j + half]) + y1);
        } else {
          o[j] = static_cast<S>(y0);
          o[j + half] = static_cast<S>(y1);
        }
      }
    }
  }
}

// out may equal inp (in place).
template <class S>
void rope_forward_t(S* out, const S* inp, const int32_t* pos, int N, int row_stride, int n_heads, int HS,
                    const double* inv_freq) {
  rope_rotate_t<S>(out, inp, pos, N, row_stride, n_heads, HS, inv_freq, 1.0, false);
}

// dinp += R(-angle) dout: the transpose (= inverse) of the forward rotation.
template <class S>
void rope_backward_t(S* dinp, const S* dout, const int32_t* pos, int N, int row_stride, int n_heads, int HS,
                     const double* inv_freq) {
  rope_rotate_t<S>(dinp, dout, pos, N, row_stride, n_heads, HS, inv_freq, -1.0, true);
}

}  // namespace teddy::kernels::ref
