#pragma once
// Reference GELU, tanh approximation (GPT-2's gelu_new, PyTorch approximate="tanh"):
//   gelu(x) = 0.5 x (1 + tanh(a)),  a = sqrt(2/pi) (x + 0.044715 x^3).
#include <cmath>
#include <cstdint>

namespace teddy::kernels::ref {

inline constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2/pi)
inline constexpr double kGeluCubic = 0.044715;

template <class S>
void gelu_forward_t(S* out, const S* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(inp[i]);
    const double a = kGeluScale * (x + kGeluCubic * x * x * x);
    out[i] = static_cast<S>(0.5 * x * (1.0 + std::tanh(a)));
  }
}

// dinp += dout * gelu'(x) (= with set), gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) a'(x), t = tanh(a).
template <class S>
void gelu_backward_t(S* dinp, const S* dout, const S* inp, int64_t n, bool set = false) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(inp[i]);
    const double a = kGeluScale * (x + kGeluCubic * x * x * x);
    const double t = std::tanh(a);
    const double da = kGeluScale * (1.0 + 3.0 * kGeluCubic * x * x);
    const double grad = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * da;
    dinp[i] = static_cast<S>((set ? 0.0 : static_cast<double>(dinp[i])) + grad * static_cast<double>(dout[i]));
  }
}

}  // namespace teddy::kernels::ref
