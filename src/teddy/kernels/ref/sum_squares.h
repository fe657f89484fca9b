#pragma once
// Reference sum of squares (for the global gradient norm), double accumulation.
#include <cstdint>

namespace teddy::kernels::ref {

template <class T>
double sum_squares_t(const T* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

}  // namespace teddy::kernels::ref
