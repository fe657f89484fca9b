#pragma once
// A float64 twin of teddy::Model for error measurements: the same forward and
// backward (embeddings, pre-norm blocks, final norm, head, cross-entropy over the
// real vocabulary) on the model's float32 parameters and batch, built from the
// double instantiations of the reference kernels (kernels/ref/*.h, each checked
// against finite differences). Nothing in it rounds to float, so its result is the
// exact value of what an fp32 run approximates, to about 1e-15 relative.
//
// It lets whole-model tests state their bounds the way the FlashAttention test does
// (tests/kernels/test_attention.cpp): an alternative fp32 path (KV cache, packing,
// micro-batch accumulation) may err against float64 at most k times as much as the
// standard fp32 path does, instead of a hand-picked distance between the two.
//
// Plain loops: meant for the tiny test configs (a few ms per pass).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/kernels/ref/attention.h"
#include "teddy/kernels/ref/crossentropy.h"
#include "teddy/kernels/ref/encoder.h"
#include "teddy/kernels/ref/gelu.h"
#include "teddy/kernels/ref/layernorm.h"
#include "teddy/kernels/ref/linear.h"
#include "teddy/kernels/ref/residual.h"
#include "teddy/kernels/ref/rmsnorm.h"
#include "teddy/kernels/ref/rope.h"
#include "teddy/kernels/ref/swiglu.h"
#include "teddy/model/model.h"
#include "teddy/model/rope_freqs.h"

namespace teddy::test {

namespace twin_detail {
// Linear layers: the reference kernel for double; for float, plain loops accumulating
// in float (so the float pass is a plain fp32 implementation, not one that hides its
// matrix products' rounding behind double accumulators).
template <class S>
void lin_fwd(S* out, const S* in, const S* w, const S* b, int N, int C, int OC) {
  if constexpr (std::is_same_v<S, double>) {
    kernels::ref::linear_forward_t<double>(out, in, w, b, N, C, OC);
  } else {
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; ++o) {
        S acc = b ? b[o] : S(0);
        for (int c = 0; c < C; ++c) acc += in[static_cast<size_t>(n) * C + c] * w[static_cast<size_t>(o) * C + c];
        out[static_cast<size_t>(n) * OC + o] = acc;
      }
  }
}
template <class S>
void lin_bwd(S* dinp, S* dw, S* db, const S* dout, const S* in, const S* w, int N, int C, int OC) {
  if constexpr (std::is_same_v<S, double>) {
    kernels::ref::linear_backward_t<double>(dinp, dw, db, dout, in, w, N, C, OC);
  } else {
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        S acc = 0;
        for (int o = 0; o < OC; ++o) acc += dout[static_cast<size_t>(n) * OC + o] * w[static_cast<size_t>(o) * C + c];
        dinp[static_cast<size_t>(n) * C + c] += acc;
      }
    for (int o = 0; o < OC; ++o) {
      for (int c = 0; c < C; ++c) {
        S acc = 0;
        for (int n = 0; n < N; ++n) acc += dout[static_cast<size_t>(n) * OC + o] * in[static_cast<size_t>(n) * C + c];
        dw[static_cast<size_t>(o) * C + c] += acc;
      }
      if (db) {
        S acc = 0;
        for (int n = 0; n < N; ++n) acc += dout[static_cast<size_t>(n) * OC + o];
        db[o] += acc;
      }
    }
  }
}
}  // namespace twin_detail

struct F64Pass {
  std::vector<double> logits;  // (B*T, Vp) when asked for
  double loss_sum = 0;         // sum of the non-ignored targets' losses
  int64_t count = 0;           // non-ignored targets
  std::vector<double> grads;   // the model's flat layout (padding 0), when asked for
};

// Forward (and with `backward`, the gradient of dloss * loss_sum, as
// Model::forward_backward(b, dloss) adds it) of `params` (a flat buffer in `m`'s
// layout) with `m`'s config, every tensor stored as S: double for the twin, float for
// a plain fp32 implementation (f32_plain_pass).
template <class S>
F64Pass twin_pass(const Model& m, const float* params, const Batch& b, bool want_logits, bool backward, double dloss) {
  namespace r = teddy::kernels::ref;
  const ModelConfig& c = m.config();
  const bool gpt2 = c.family == Family::gpt2;
  const int B = b.B, T = b.T, N = B * T, C = c.d_model, V = c.vocab_size, Vp = c.padded_vocab_size;
  const int NH = c.n_head, NKV = c.n_kv_head, HS = c.head_dim(), QKV = c.qkv_dim(), F = c.d_ff;
  const int UP = gpt2 ? F : 2 * F, L = c.n_layer;
  const float eps = c.norm_eps;
  const ParamLayout& lay = m.layout();
  std::vector<S> P(params, params + m.flat_size());
  std::vector<S> G(backward ? m.flat_size() : 0, S(0));
  auto has = [&](const std::string& n) {
    for (const ParamInfo& p : lay.params)
      if (p.name == n) return true;
    return false;
  };
  auto p = [&](const std::string& n) -> const S* { return has(n) ? P.data() + lay.find(n).offset : nullptr; };
  auto g = [&](const std::string& n) -> S* { return has(n) ? G.data() + lay.find(n).offset : nullptr; };
  std::vector<int32_t> pos(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) pos[i] = b.pos ? b.pos[i] : i % T;

  using Vec = std::vector<S>;
  auto zeros = [](size_t n) { return Vec(n, S(0)); };
  const size_t NC = static_cast<size_t>(N) * C;
  struct Layer {
    Vec x, ln1, mean1, rstd1, qkv_pre, qkv, att, lse, h, ln2, mean2, rstd2, up, act;
  };
  std::vector<Layer> ls(static_cast<size_t>(L));
  Vec x = zeros(NC);
  r::encoder_forward_t<S>(x.data(), b.tokens, pos.data(), p("tok_emb.weight"), p("pos_emb.weight"), N, C);
  auto norm_fwd = [&](Vec& out, Vec& mean, Vec& rstd, const Vec& in, const std::string& n) {
    out = zeros(NC), mean = zeros(static_cast<size_t>(N)), rstd = zeros(static_cast<size_t>(N));
    if (gpt2)
      r::layernorm_forward_t<S>(out.data(), mean.data(), rstd.data(), in.data(), p(n + ".weight"), p(n + ".bias"), N, C,
                                eps);
    else
      r::rmsnorm_forward_t<S>(out.data(), rstd.data(), in.data(), p(n + ".weight"), N, C, eps);
  };
  auto norm_bwd = [&](Vec& dinp, const Vec& dout, const Vec& in, const Vec& mean, const Vec& rstd,
                      const std::string& n) {
    if (gpt2)
      r::layernorm_backward_t<S>(dinp.data(), g(n + ".weight"), g(n + ".bias"), dout.data(), in.data(),
                                 p(n + ".weight"), mean.data(), rstd.data(), N, C);
    else
      r::rmsnorm_backward_t<S>(dinp.data(), g(n + ".weight"), dout.data(), in.data(), p(n + ".weight"), rstd.data(), N,
                               C);
  };
  for (int l = 0; l < L; ++l) {
    Layer& a = ls[l];
    const std::string pre = "layers." + std::to_string(l) + ".";
    a.x = x;
    norm_fwd(a.ln1, a.mean1, a.rstd1, a.x, pre + "norm1");
    a.qkv_pre = zeros(static_cast<size_t>(N) * QKV);
    twin_detail::lin_fwd<S>(a.qkv_pre.data(), a.ln1.data(), p(pre + "attn.qkv.weight"), p(pre + "attn.qkv.bias"), N, C,
                            QKV);
    a.qkv = a.qkv_pre;
    if (!gpt2) {  // rotate q and k heads (v passes)
      const std::vector<double> freq = rope_inv_freq(c);  // scaled as the model's (rope_scaling)
      r::rope_forward_t<S>(a.qkv.data(), a.qkv_pre.data(), pos.data(), N, QKV, NH, HS, freq.data());
      r::rope_forward_t<S>(a.qkv.data() + NH * HS, a.qkv_pre.data() + NH * HS, pos.data(), N, QKV, NKV, HS,
                           freq.data());
    }
    a.att = zeros(NC), a.lse = zeros(static_cast<size_t>(B) * NH * T);
    r::attention_forward_t<S>(a.att.data(), a.lse.data(), a.qkv.data(), b.seg, B, T, NH, NKV, HS);
    a.h = zeros(NC);
    twin_detail::lin_fwd<S>(a.h.data(), a.att.data(), p(pre + "attn.proj.weight"), p(pre + "attn.proj.bias"), N, C, C);
    for (size_t i = 0; i < NC; ++i) a.h[i] += a.x[i];
    norm_fwd(a.ln2, a.mean2, a.rstd2, a.h, pre + "norm2");
    a.up = zeros(static_cast<size_t>(N) * UP);
    twin_detail::lin_fwd<S>(a.up.data(), a.ln2.data(), p(pre + "mlp.up.weight"), p(pre + "mlp.up.bias"), N, C, UP);
    a.act = zeros(static_cast<size_t>(N) * F);
    if (gpt2)
      r::gelu_forward_t<S>(a.act.data(), a.up.data(), static_cast<int64_t>(N) * F);
    else
      r::swiglu_forward_t<S>(a.act.data(), a.up.data(), N, F);
    twin_detail::lin_fwd<S>(x.data(), a.act.data(), p(pre + "mlp.down.weight"), p(pre + "mlp.down.bias"), N, F, C);
    for (size_t i = 0; i < NC; ++i) x[i] += a.h[i];
  }
  Vec lnf, meanf, rstdf;
  norm_fwd(lnf, meanf, rstdf, x, "final_norm");
  const std::string head = c.tie_embeddings ? "tok_emb.weight" : "lm_head.weight";
  Vec logits = zeros(static_cast<size_t>(N) * Vp);
  twin_detail::lin_fwd<S>(logits.data(), lnf.data(), p(head), nullptr, N, C, Vp);
  F64Pass out;
  Vec dlogits;
  if (b.targets) {
    Vec losses(static_cast<size_t>(N));
    if (backward) dlogits = zeros(logits.size());
    out.loss_sum = r::crossentropy_forward_backward_t<S>(losses.data(), backward ? dlogits.data() : nullptr,
                                                         logits.data(), b.targets, N, V, Vp, kIgnoreIndex, dloss);
    for (int i = 0; i < N; ++i) out.count += b.targets[i] != kIgnoreIndex;
  }
  if (want_logits) out.logits.assign(logits.begin(), logits.end());
  if (!backward || !b.targets) return out;

  Vec dx = zeros(NC), dln = zeros(NC);
  twin_detail::lin_bwd<S>(dln.data(), g(head), nullptr, dlogits.data(), lnf.data(), p(head), N, C, Vp);
  norm_bwd(dx, dln, x, meanf, rstdf, "final_norm");
  for (int l = L - 1; l >= 0; --l) {
    Layer& a = ls[l];
    const std::string pre = "layers." + std::to_string(l) + ".";
    Vec dact = zeros(static_cast<size_t>(N) * F), dup = zeros(static_cast<size_t>(N) * UP);
    twin_detail::lin_bwd<S>(dact.data(), g(pre + "mlp.down.weight"), g(pre + "mlp.down.bias"), dx.data(), a.act.data(),
                            p(pre + "mlp.down.weight"), N, F, C);
    if (gpt2)
      r::gelu_backward_t<S>(dup.data(), dact.data(), a.up.data(), static_cast<int64_t>(N) * F);
    else
      r::swiglu_backward_t<S>(dup.data(), dact.data(), a.up.data(), N, F);
    Vec d2 = zeros(NC);
    twin_detail::lin_bwd<S>(d2.data(), g(pre + "mlp.up.weight"), g(pre + "mlp.up.bias"), dup.data(), a.ln2.data(),
                            p(pre + "mlp.up.weight"), N, C, UP);
    norm_bwd(dx, d2, a.h, a.mean2, a.rstd2, pre + "norm2");  // dx = dL/dh (residual + norm2 path)
    Vec datt = zeros(NC), dqkv = zeros(static_cast<size_t>(N) * QKV);
    twin_detail::lin_bwd<S>(datt.data(), g(pre + "attn.proj.weight"), g(pre + "attn.proj.bias"), dx.data(),
                            a.att.data(), p(pre + "attn.proj.weight"), N, C, C);
    r::attention_backward_t<S>(dqkv.data(), datt.data(), a.qkv.data(), a.att.data(), a.lse.data(), b.seg, B, T, NH, NKV,
                               HS);
    if (!gpt2) {  // rotate the q and k gradients back; v passes
      Vec dr = zeros(dqkv.size());
      for (int i = 0; i < N; ++i)
        for (int j = (NH + NKV) * HS; j < QKV; ++j)
          dr[static_cast<size_t>(i) * QKV + j] = dqkv[static_cast<size_t>(i) * QKV + j];
      const std::vector<double> freq = rope_inv_freq(c);
      r::rope_backward_t<S>(dr.data(), dqkv.data(), pos.data(), N, QKV, NH, HS, freq.data());
      r::rope_backward_t<S>(dr.data() + NH * HS, dqkv.data() + NH * HS, pos.data(), N, QKV, NKV, HS, freq.data());
      dqkv = dr;
    }
    Vec d1 = zeros(NC);
    twin_detail::lin_bwd<S>(d1.data(), g(pre + "attn.qkv.weight"), g(pre + "attn.qkv.bias"), dqkv.data(), a.ln1.data(),
                            p(pre + "attn.qkv.weight"), N, C, QKV);
    norm_bwd(dx, d1, a.x, a.mean1, a.rstd1, pre + "norm1");  // dx = dL/dx_in
  }
  r::encoder_backward_t<S>(g("tok_emb.weight"), g("pos_emb.weight"), dx.data(), b.tokens, pos.data(), N, C);
  out.grads.assign(G.begin(), G.end());
  return out;
}

// The float64 twin.
inline F64Pass f64_pass(const Model& m, const float* params, const Batch& b, bool want_logits, bool backward,
                        double dloss = 1.0) {
  return twin_pass<double>(m, params, b, want_logits, backward, dloss);
}

// The same computation in float: every tensor stored in float, the matrix products
// accumulated in float in plain loop order (the other reference kernels still sum in
// double and round their outputs once): a plain fp32 implementation.
inline F64Pass f32_plain_pass(const Model& m, const Batch& b, bool want_logits, bool backward, double dloss = 1.0) {
  return twin_pass<float>(m, m.params(), b, want_logits, backward, dloss);
}

// The twin with the model's current parameters.
inline F64Pass f64_pass(const Model& m, const Batch& b, bool want_logits, bool backward, double dloss = 1.0) {
  return f64_pass(m, m.params(), b, want_logits, backward, dloss);
}

// ---- the rule for an fp32 result against float64 ----
// An fp32 result X cannot be closer to its float64 value X64 than fp32 rounding allows;
// it must not be further than k = 2 times a plain fp32 implementation P of the same
// computation (torch float32 against the PyTorch reference; teddy's standard path for
// one of its alternatives), plus eps ||X64||, the error of merely storing X64 in fp32
// (so a P that happens to be almost exact does not make the bound vanish):
//     ||X - X64|| <= 2 ||P - X64|| + eps ||X64||
// (tests/kernels/test_attention.cpp holds FlashAttention to the same bar). Why 2: X and
// P round in different orders (GEMM blocking, ISA, thread count), so their errors are
// different draws of the same size, and over many entries (hundreds or more; pool small
// tensors) the ratio of the two norms concentrates near 1; a real error (a wrong term,
// a missed scale, a dropped mask) is orders of magnitude above twice the rounding.
// It holds for a vector, not for a scalar: the ratio of two scalars' rounding errors is
// a ratio of two random draws, past 2 about a third of the time. Scalars derived from
// vectors get their own bounds (e.g. a loss from its logits' error).
struct Dist {
  double x_abs = 0, p_abs = 0, norm64 = 0;  // ||X - X64||, ||P - X64||, ||X64||
  // k ||P - X64|| + eps ||X64||; other k and eps state the same rule for another
  // precision (the twin against torch64: k = 2 eps64 / eps32, eps = eps64).
  double bound(double k = 2, double eps = kEpsF32) const { return k * p_abs + eps * norm64; }
  double used(double k = 2, double eps = kEpsF32) const { return x_abs / bound(k, eps); }
  // Pools another part (a tensor, a step) into one vector.
  void add(const Dist& d) {
    x_abs = std::hypot(x_abs, d.x_abs);
    p_abs = std::hypot(p_abs, d.p_abs);
    norm64 = std::hypot(norm64, d.norm64);
  }
};
// EXPECT the rule for d, noted (kernel_check.h's note_used).
inline void expect_rule(const Dist& d, const std::string& what) {
  EXPECT_LE(d.x_abs, d.bound()) << what << ": " << d.x_abs << " from float64, plain fp32 " << d.p_abs << " (norm "
                                << d.norm64 << ")";
  note_used(what, d.used());
}
template <class A, class P, class W>
Dist dist(const A* x, const P* plain, const W* x64, size_t n) {
  double a = 0, b = 0, c = 0;
  for (size_t i = 0; i < n; ++i) {
    const double w = static_cast<double>(x64[i]);
    a += (static_cast<double>(x[i]) - w) * (static_cast<double>(x[i]) - w);
    b += (static_cast<double>(plain[i]) - w) * (static_cast<double>(plain[i]) - w);
    c += w * w;
  }
  Dist d;
  d.x_abs = std::isfinite(a) ? std::sqrt(a) : INFINITY;
  d.p_abs = std::sqrt(b);
  d.norm64 = std::sqrt(c);
  return d;
}

// A bound on |loss_sum - loss64_sum| for a sum of cross-entropy losses computed by
// teddy from fp32 logits z (rows of Vp, the first V real) whose float64 values are z64.
// d(loss)/dz of one target has l1 norm 2(1 - p_t) <= 2, so each target's loss is off
// by at most 2 max_j |z_j - z64_j| (times `paths` when the loss came from another fp32
// evaluation of the same logits than z, e.g. the chunked classifier of forward without
// logits: taken as at most `paths` = 2 times z's error, the rule below), plus the
// cross-entropy kernel's own rounding (kernels/cpu/crossentropy.cpp): the float sum of
// V positive exps, relative error <= (V - 1) u in any order (u = eps/2); each exp
// within 1 ulp (eps) of its argument x_j - max, itself rounded (a relative error
// u |x_j - max| <= u * the row's range in the term); log and the rest in double; then
// the loss stored as float (u |loss|).
template <class Z>
double loss_sum_bound(const Z* z, const double* z64, const int32_t* targets, int N, int V, int Vp, double paths,
                      double loss64_sum, double eps = kEpsF32) {
  double b = eps / 2 * std::fabs(loss64_sum);
  for (int r = 0; r < N; ++r) {
    if (targets[r] == kIgnoreIndex) continue;
    double m = 0, lo = INFINITY, hi = -INFINITY;
    for (int v = 0; v < V; ++v) {
      const double x = static_cast<double>(z[static_cast<size_t>(r) * Vp + v]);
      m = std::max(m, std::fabs(x - z64[static_cast<size_t>(r) * Vp + v]));
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    b += paths * 2 * m + eps * ((V - 1) / 2.0 + 1 + (hi - lo) / 2);
  }
  return b;
}

// Gradients `x` (the model's flat layout) against `exact` under the rule, `plain` the
// plain fp32 implementation's: each matrix on its own, the vectors (norm weights,
// biases: tens of entries, too few for two rounding errors' ratio to settle near 1)
// pooled into one. Returns the largest fraction of a bound used.
template <class X, class P>
double expect_grads_within(const Model& m, const X* x, const P* plain, const double* exact, const std::string& what) {
  Dist pooled;
  double used = 0;
  auto check = [&](const Dist& d, const std::string& name) {
    EXPECT_LE(d.x_abs, d.bound()) << what << ": gradient of " << name << ": " << d.x_abs << " from float64, plain fp32 "
                                  << d.p_abs << " (norm " << d.norm64 << ")";
    used = std::max(used, d.used());
  };
  for (const ParamInfo& p : m.layout().params) {
    const Dist d = dist(x + p.offset, plain + p.offset, exact + p.offset, p.numel);
    if (p.shape.size() == 1)
      pooled.add(d);
    else
      check(d, p.name);
  }
  check(pooled, "the vectors");
  note_used(what + " gradients", used);
  return used;
}

}  // namespace teddy::test
