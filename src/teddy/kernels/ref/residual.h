#pragma once
// Reference residual add and gradient accumulation.
#include <cstdint>

namespace teddy::kernels::ref {

// out = a + b (n elements).
template <class S>
void residual_forward_t(S* out, const S* a, const S* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<S>(static_cast<double>(a[i]) + static_cast<double>(b[i]));
}

// dst += src.
template <class S>
void accumulate_t(S* dst, const S* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = static_cast<S>(static_cast<double>(dst[i]) + static_cast<double>(src[i]));
}

}  // namespace teddy::kernels::ref
