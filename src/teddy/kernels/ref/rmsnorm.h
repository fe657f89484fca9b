#pragma once
// Reference RMSNorm (LLaMA): out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps).
#include <cmath>
#include <cstdint>

namespace teddy::kernels::ref {

// rstd (N) is saved for backward; it may be nullptr when not needed (inference).
template <class S>
void rmsnorm_forward_t(S* out, S* rstd, const S* inp, const S* weight, int N, int C, float eps) {
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<int64_t>(i) * C;
    S* o = out + static_cast<int64_t>(i) * C;
    double ss = 0.0;
    for (int c = 0; c < C; ++c) ss += static_cast<double>(x[c]) * static_cast<double>(x[c]);
    const double r = 1.0 / std::sqrt(ss / C + static_cast<double>(eps));
    for (int c = 0; c < C; ++c)
      o[c] = static_cast<S>(static_cast<double>(x[c]) * r * static_cast<double>(weight[c]));
    if (rstd) rstd[i] = static_cast<S>(r);
  }
}

// With norm = x * rstd and dnorm = dout * weight:
//   dinp    += rstd * (dnorm - norm * mean(dnorm * norm))
//   dweight += sum_rows dout * norm
template <class S>
void rmsnorm_backward_t(S* dinp, S* dweight, const S* dout, const S* inp, const S* weight, const S* rstd,
                        int N, int C) {
  for (int c = 0; c < C; ++c) {
    double dw = 0.0;
    for (int i = 0; i < N; ++i) {
      const int64_t k = static_cast<int64_t>(i) * C + c;
      dw += static_cast<double>(dout[k]) * static_cast<double>(inp[k]) * static_cast<double>(rstd[i]);
    }
    dweight[c] = static_cast<S>(static_cast<double>(dweight[c]) + dw);
  }
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<int64_t>(i) * C;
    const S* d = dout + static_cast<int64_t>(i) * C;
    S* g = dinp + static_cast<int64_t>(i) * C;
    const double r = static_cast<double>(rstd[i]);
    double dnorm_norm_mean = 0.0;
    for (int c = 0; c < C; ++c)
      dnorm_norm_mean += static_cast<double>(d[c]) * static_cast<double>(weight[c]) * static_cast<double>(x[c]) * r;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; ++c) {
      const double n = static_cast<double>(x[c]) * r;
      const double dn = static_cast<double>(d[c]) * static_cast<double>(weight[c]);
      g[c] = static_cast<S>(static_cast<double>(g[c]) + r * (dn - n * dnorm_norm_mean));
    }
  }
}

}  // namespace teddy::kernels::ref
