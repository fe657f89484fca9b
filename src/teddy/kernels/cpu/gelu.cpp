// GELU (tanh approximation), fast path. Uses 0.5 (1 + tanh(a)) = sigmoid(2a), so one
// vectorized exp serves both passes and nothing cancels:
//   gelu(x)  = x s,                s = sigmoid(2a), a = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = s + 2 x s (1 - s) a',  a' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#include <cstdint>

#include "teddy/kernels/cpu/vec_math.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements
constexpr float kScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kCubic = 0.044715f;
}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float a = kScale * (x + kCubic * x * x * x);
    out[i] = x * sigmoid_approx(2.0f * a).s;
  }
}

namespace {
template <bool kSet>
void gelu_backward_impl(float* dinp, const float* dout, const float* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float a = kScale * (x + kCubic * x * x * x);
    const auto [s, e] = sigmoid_approx(2.0f * a);
    const float da = kScale * (1.0f + 3.0f * kCubic * x * x);
    const float grad = s + 2.0f * x * (e * s * s) * da;  // s (1 - s) = e s^2
    if constexpr (kSet)
      dinp[i] = grad * dout[i];
    else
      dinp[i] += grad * dout[i];
  }
}
}  // namespace

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode) {
  if (mode == Grad::set)
    gelu_backward_impl<true>(dinp, dout, inp, n);
  else
    gelu_backward_impl<false>(dinp, dout, inp, n);
}

}  // namespace teddy::kernels::cpu
