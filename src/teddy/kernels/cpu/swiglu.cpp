// SwiGLU, fast path: gate_up(N,2H) = [gate | up] per row, out(N,H) = silu(gate) * up.
// With s = sigmoid(g) and 1 - s = e s (e = e^-g): silu'(g) = s (1 + g e s).
#include <cstdint>

#include "teddy/kernels/cpu/vec_math.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements of out
}  // namespace

void swiglu_forward(float* out, const float* gate_up, int N, int H) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * H >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    const float* g = gate_up + static_cast<int64_t>(i) * 2 * H;  // (H) gate, then (H) up
    const float* u = g + H;
    float* o = out + static_cast<int64_t>(i) * H;
#pragma omp simd
    for (int j = 0; j < H; ++j) o[j] = g[j] * sigmoid_approx(g[j]).s * u[j];
  }
}

namespace {
template <bool kSet>
void swiglu_backward_impl(float* dgate_up, const float* dout, const float* gate_up, int N, int H) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * H >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    const float* g = gate_up + static_cast<int64_t>(i) * 2 * H;
    const float* u = g + H;
    const float* d = dout + static_cast<int64_t>(i) * H;
    float* dg = dgate_up + static_cast<int64_t>(i) * 2 * H;
    float* du = dg + H;
#pragma omp simd
    for (int j = 0; j < H; ++j) {
      const float x = g[j];
      const auto [s, e] = sigmoid_approx(x);
      const float gg = d[j] * u[j] * s * (1.0f + x * e * s), gu = d[j] * x * s;
      if constexpr (kSet) {
        dg[j] = gg;
        du[j] = gu;
      } else {
        dg[j] += gg;
        du[j] += gu;
      }
    }
  }
}
}  // namespace

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int H, Grad mode) {
  if (mode == Grad::set)
    swiglu_backward_impl<true>(dgate_up, dout, gate_up, N, H);
  else
    swiglu_backward_impl<false>(dgate_up, dout, gate_up, N, H);
}

}  // namespace teddy::kernels::cpu
