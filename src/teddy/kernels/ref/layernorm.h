#pragma once
// Reference LayerNorm over the last dim (biased variance, as PyTorch), double accumulation.
#include <cmath>
#include <cstdint>

namespace teddy::kernels::ref {

// out(N,C) = (inp - mean) * rstd * weight + bias. mean, rstd (N) are saved for
// backward; either may be nullptr when not needed (inference).
template <class S>
void layernorm_forward_t(S* out, S* mean, S* rstd, const S* inp, const S* weight, const S* bias, int N,
                         int C, float eps) {
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<int64_t>(i) * C;
    S* o = out + static_cast<int64_t>(i) * C;
    double m = 0.0;
    for (int c = 0; c < C; ++c) m += static_cast<double>(x[c]);
    m /= C;
    double v = 0.0;
    for (int c = 0; c < C; ++c) {
      const double d = static_cast<double>(x[c]) - m;
      v += d * d;
    }
    v /= C;
    const double r = 1.0 / std::sqrt(v + static_cast<double>(eps));
    for (int c = 0; c < C; ++c) {
      const double n = (static_cast<double>(x[c]) - m) * r;
      o[c] = static_cast<S>(n * static_cast<double>(weight[c]) + static_cast<double>(bias[c]));
    }
    if (mean) mean[i] = static_cast<S>(m);
    if (rstd) rstd[i] = static_cast<S>(r);
  }
}

// With norm = (x - mean) * rstd and dnorm = dout * weight:
//   dinp    += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
//   dweight += sum_rows dout * norm;  dbias += sum_rows dout
template <class S>
void layernorm_backward_t(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                          const S* mean, const S* rstd, int N, int C) {
  for (int c = 0; c < C; ++c) {
    double dw = 0.0, db = 0.0;
    for (int i = 0; i < N; ++i) {
      const int64_t k = static_cast<int64_t>(i) * C + c;
      const double n = (static_cast<double>(inp[k]) - static_cast<double>(mean[i])) *
                       static_cast<double>(rstd[i]);
      dw += static_cast<double>(dout[k]) * n;
      db += static_cast<double>(dout[k]);
    }
    dweight[c] = static_cast<S>(static_cast<double>(dweight[c]) + dw);
    dbias[c] = static_cast<S>(static_cast<double>(dbias[c]) + db);
  }
  for (int i = 0; i < N; ++i) {
    const S* x = inp + static_cast<int64_t>(i) * C;
    const S* d = dout + static_cast<int64_t>(i) * C;
    S* g = dinp + static_cast<int64_t>(i) * C;
    const double m = static_cast<double>(mean[i]), r = static_cast<double>(rstd[i]);
    double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
    for (int c = 0; c < C; ++c) {
      const double n = (static_cast<double>(x[c]) - m) * r;
      const double dn = static_cast<double>(d[c]) * static_cast<double>(weight[c]);
      dnorm_mean += dn;
      dnorm_norm_mean += dn * n;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; ++c) {
      const double n = (static_cast<double>(x[c]) - m) * r;
      const double dn = static_cast<double>(d[c]) * static_cast<double>(weight[c]);
      g[c] = static_cast<S>(static_cast<double>(g[c]) + r * (dn - dnorm_mean - n * dnorm_norm_mean));
    }
  }
}

}  // namespace teddy::kernels::ref
