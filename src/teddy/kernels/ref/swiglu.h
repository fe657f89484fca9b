#pragma once
// Reference SwiGLU: gate_up(N,2H) holds [gate | up] per row; out(N,H) = silu(gate) * up,
// silu(g) = g * sigmoid(g).
#include <cmath>
#include <cstdint>

namespace teddy::kernels::ref {

template <class S>
void swiglu_forward_t(S* out, const S* gate_up, int N, int H) {
  for (int i = 0; i < N; ++i) {
    const S* g = gate_up + static_cast<int64_t>(i) * 2 * H;
    const S* u = g + H;
    S* o = out + static_cast<int64_t>(i) * H;
    for (int j = 0; j < H; ++j) {
      const double x = static_cast<double>(g[j]);
      const double s = 1.0 / (1.0 + std::exp(-x));
      o[j] = static_cast<S>(x * s * static_cast<double>(u[j]));
    }
  }
}

// dgate += dout * up * silu'(gate), silu'(g) = s (1 + g (1 - s)); dup += dout * silu(gate)
// (= instead of += with set).
template <class S>
void swiglu_backward_t(S* dgate_up, const S* dout, const S* gate_up, int N, int H, bool set = false) {
  for (int i = 0; i < N; ++i) {
    const S* g = gate_up + static_cast<int64_t>(i) * 2 * H;
    const S* u = g + H;
    const S* d = dout + static_cast<int64_t>(i) * H;
    S* dg = dgate_up + static_cast<int64_t>(i) * 2 * H;
    S* du = dg + H;
    for (int j = 0; j < H; ++j) {
      const double x = static_cast<double>(g[j]);
      const double s = 1.0 / (1.0 + std::exp(-x));
      const double dd = static_cast<double>(d[j]);
      const double g0 = set ? 0.0 : static_cast<double>(dg[j]), u0 = set ? 0.0 : static_cast<double>(du[j]);
      dg[j] = static_cast<S>(g0 + dd * static_cast<double>(u[j]) * s * (1.0 + x * (1.0 - s)));
      du[j] = static_cast<S>(u0 + dd * x * s);
    }
  }
}

}  // namespace teddy::kernels::ref
