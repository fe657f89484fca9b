#pragma once
// Reference causal attention (GQA, optional document mask), templated over the
// scalar type: plain loops, one materialised score row, double accumulation.
// The double instantiation is checked by finite differences; the float one is
// what the fast kernels are compared with. Layout and semantics: ops.inc.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "teddy/core/error.h"

namespace teddy::kernels::ref {

inline void attention_check_dims(int B, int T, int NH, int NKV, int HS) {
  if (B < 1 || T < 1 || NH < 1 || NKV < 1 || HS < 1 || NH % NKV != 0)
    throw Error("attention: need B, T, NH, NKV, HS >= 1 and NKV dividing NH (got B=" + std::to_string(B) +
                " T=" + std::to_string(T) + " NH=" + std::to_string(NH) + " NKV=" + std::to_string(NKV) +
                " HS=" + std::to_string(HS) + ")");
}

// True when query t may attend key s of the same sequence (s <= t is the caller's loop bound).
inline bool attention_visible(const int32_t* seg_b, int s, int t) { return !seg_b || seg_b[s] == seg_b[t]; }

// Scaled scores of query row t against keys 0..t of one (b, h), masked keys -inf. s: (t+1).
template <class F>
void attention_score_row(double* s, const F* q, const F* kbase, int64_t R, const int32_t* seg_b, int t, int HS,
                         double scale) {
  for (int u = 0; u <= t; ++u) {
    if (!attention_visible(seg_b, u, t)) { s[u] = -std::numeric_limits<double>::infinity(); continue; }
    const F* k = kbase + u * R;
    double dot = 0;
    for (int d = 0; d < HS; ++d) dot += static_cast<double>(q[d]) * static_cast<double>(k[d]);
    s[u] = dot * scale;
  }
}

// out(B,T,NH*HS), lse(B,NH,T) from qkv(B,T,(NH+2*NKV)*HS).
template <class F>
void attention_forward_t(F* out, F* lse, const F* qkv, const int32_t* seg, int B, int T, int NH, int NKV, int HS) {
  attention_check_dims(B, T, NH, NKV, HS);
  const int64_t R = static_cast<int64_t>(NH + 2 * NKV) * HS;  // qkv row stride
  const int64_t C = static_cast<int64_t>(NH) * HS;              // out row stride
  const int G = NH / NKV;                                       // query heads per kv head
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<double> s(T), acc(HS);
  for (int b = 0; b < B; ++b) {
    const F* base = qkv + static_cast<int64_t>(b) * T * R;
    const int32_t* seg_b = seg ? seg + static_cast<int64_t>(b) * T : nullptr;
    for (int h = 0; h < NH; ++h) {
      const int g = h / G;
      const F* kbase = base + static_cast<int64_t>(NH + g) * HS;
      const F* vbase = base + static_cast<int64_t>(NH + NKV + g) * HS;
      for (int t = 0; t < T; ++t) {
        attention_score_row(s.data(), base + t * R + h * HS, kbase, R, seg_b, t, HS, scale);
        double mx = -std::numeric_limits<double>::infinity();
        for (int u = 0; u <= t; ++u) mx = std::max(mx, s[u]);
        double sum = 0;
        for (int u = 0; u <= t; ++u) {
          s[u] = std::isinf(s[u]) ? 0.0 : std::exp(s[u] - mx);  // key t itself is always visible
          sum += s[u];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int u = 0; u <= t; ++u)
          for (int d = 0; d < HS; ++d) acc[d] += s[u] * static_cast<double>(vbase[u * R + d]);
        F* o = out + (static_cast<int64_t>(b) * T + t) * C + h * HS;
        for (int d = 0; d < HS; ++d) o[d] = static_cast<F>(acc[d] / sum);
        lse[(static_cast<int64_t>(b) * NH + h) * T + t] = static_cast<F>(mx + std::log(sum));
      }
    }
  }
}

// dqkv += d(loss)/d(qkv) (set: dqkv = ...). P is recomputed from lse; D_t = dout_t . out_t.
template <class F>
void attention_backward_t(F* dqkv, const F* dout, const F* qkv, const F* out, const F* lse, const int32_t* seg,
                          int B, int T, int NH, int NKV, int HS, bool set = false) {
  attention_check_dims(B, T, NH, NKV, HS);
  const int64_t R = static_cast<int64_t>(NH + 2 * NKV) * HS;
  const int64_t C = static_cast<int64_t>(NH) * HS;
  const int G = NH / NKV;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<double> grad(static_cast<size_t>(B) * T * R, 0.0);  // double accumulation, added at the end
  std::vector<double> s(T);
  for (int b = 0; b < B; ++b) {
    const int64_t row0 = static_cast<int64_t>(b) * T;
    const F* base = qkv + row0 * R;
    double* gbase = grad.data() + row0 * R;
    const int32_t* seg_b = seg ? seg + row0 : nullptr;
    for (int h = 0; h < NH; ++h) {
      const int g = h / G;
      const int64_t qoff = static_cast<int64_t>(h) * HS, koff = static_cast<int64_t>(NH + g) * HS,
                    voff = static_cast<int64_t>(NH + NKV + g) * HS;
      for (int t = 0; t < T; ++t) {
        const F* q = base + t * R + qoff;
        const F* dO = dout + (row0 + t) * C + h * HS;
        const F* O = out + (row0 + t) * C + h * HS;
        attention_score_row(s.data(), q, base + koff, R, seg_b, t, HS, scale);
        const double L = static_cast<double>(lse[(static_cast<int64_t>(b) * NH + h) * T + t]);
        double D = 0;
        for (int d = 0; d < HS; ++d) D += static_cast<double>(dO[d]) * static_cast<double>(O[d]);
        for (int u = 0; u <= t; ++u) {
          if (std::isinf(s[u])) continue;  // masked: p = 0
          const double p = std::exp(s[u] - L);
          const F* v = base + u * R + voff;
          const F* k = base + u * R + koff;
          double dp = 0;
          for (int d = 0; d < HS; ++d) dp += static_cast<double>(dO[d]) * static_cast<double>(v[d]);
          const double ds = p * (dp - D) * scale;  // d(loss)/d(q.k)
          double* gq = gbase + t * R + qoff;
          double* gk = gbase + u * R + koff;
          double* gv = gbase + u * R + voff;
          for (int d = 0; d < HS; ++d) {
            gq[d] += ds * static_cast<double>(k[d]);
            gk[d] += ds * static_cast<double>(q[d]);
            gv[d] += p * static_cast<double>(dO[d]);
          }
        }
      }
    }
  }
  for (size_t i = 0; i < grad.size(); ++i)
    dqkv[i] = static_cast<F>((set ? 0.0 : static_cast<double>(dqkv[i])) + grad[i]);
}

}  // namespace teddy::kernels::ref
