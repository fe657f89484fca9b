#pragma once
// Reference token (+ learned position) embedding. Templates over the scalar type:
// double for finite-difference checks, float for the ops.inc entry points.
#include <cstdint>

namespace teddy::kernels::ref {

// out(N,C) = wte[tokens[i]] (+ wpe[pos[i]]). pos is read only when wpe != nullptr.
template <class S>
void encoder_forward_t(S* out, const int32_t* tokens, const int32_t* pos, const S* wte, const S* wpe,
                       int N, int C) {
  for (int i = 0; i < N; ++i) {
    const S* te = wte + static_cast<int64_t>(tokens[i]) * C;
    const S* pe = wpe ? wpe + static_cast<int64_t>(pos[i]) * C : nullptr;
    S* o = out + static_cast<int64_t>(i) * C;
    for (int c = 0; c < C; ++c) {
      const double v = static_cast<double>(te[c]) + (pe ? static_cast<double>(pe[c]) : 0.0);
      o[c] = static_cast<S>(v);
    }
  }
}

// dwte[tokens[i]] += dout[i]; dwpe[pos[i]] += dout[i] (dwpe may be nullptr), rows in order.
template <class S>
void encoder_backward_t(S* dwte, S* dwpe, const S* dout, const int32_t* tokens, const int32_t* pos, int N,
                        int C) {
  for (int i = 0; i < N; ++i) {
    const S* d = dout + static_cast<int64_t>(i) * C;
    S* gt = dwte + static_cast<int64_t>(tokens[i]) * C;
    S* gp = dwpe ? dwpe + static_cast<int64_t>(pos[i]) * C : nullptr;
    for (int c = 0; c < C; ++c) {
      gt[c] = static_cast<S>(static_cast<double>(gt[c]) + static_cast<double>(d[c]));
      if (gp) gp[c] = static_cast<S>(static_cast<double>(gp[c]) + static_cast<double>(d[c]));
    }
  }
}

}  // namespace teddy::kernels::ref
