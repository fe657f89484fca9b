#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"

using namespace teddy;

namespace {

// Two tensors with a padding gap between them, one decayed and one not.
ParamLayout small_layout() {
  ParamLayout l;
  ParamInfo a;
  a.name = "w";
  a.shape = {3, 5};
  a.offset = 0;
  a.numel = 15;
  a.decay = true;
  ParamInfo b;
  b.name = "b";
  b.shape = {7};
  b.offset = 16;
  b.numel = 7;
  b.decay = false;
  ParamInfo c;
  c.name = "w2";
  c.shape = {2, 4};
  c.offset = 32;
  c.numel = 8;
  c.decay = true;
  l.params = {a, b, c};
  l.total = 48;
  return l;
}

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST(AdamW, ZeroGradsDecayOnlyMatrices) {
  ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  const ParamLayout layout = make_param_layout(cfg);
  AdamWConfig oc;
  oc.weight_decay = 0.1f;
  AdamW opt(layout, oc);
  std::vector<float> p(layout.total, 0.0f), g(layout.total, 0.0f);
  for (const ParamInfo& pi : layout.params)
    for (size_t i = 0; i < pi.numel; ++i) p[pi.offset + i] = 0.5f + 0.001f * static_cast<float>(i % 100);
  const std::vector<float> p0 = p;
  const float lr = 0.01f;
  opt.step(p.data(), g.data(), lr);
  EXPECT_EQ(opt.t(), 1);
  int decayed = 0, kept = 0;
  for (const ParamInfo& pi : layout.params) {
    // Norm weights and biases are exempt; everything with >= 2 dims decays.
    EXPECT_EQ(pi.decay, pi.shape.size() >= 2) << pi.name;
    for (size_t i = 0; i < pi.numel; ++i) {
      const float before = p0[pi.offset + i], after = p[pi.offset + i];
      const float want = pi.decay ? before - lr * oc.weight_decay * before : before;
      ASSERT_FLOAT_EQ(after, want) << pi.name << "[" << i << "]";
    }
    (pi.decay ? decayed : kept)++;
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(kept, 0);
  // Padding between tensors stays exactly zero.
  std::vector<bool> used(layout.total, false);
  for (const ParamInfo& pi : layout.params)
    for (size_t i = 0; i < pi.numel; ++i) used[pi.offset + i] = true;
  for (size_t i = 0; i < layout.total; ++i) {
    if (used[i]) continue;
    ASSERT_EQ(p[i], 0.0f) << "padding at " << i;
  }
}

// Five steps against textbook AdamW (decoupled decay) in double with the decimal
// hyperparameters, element by element, each within a bound carried along in double:
// per step, m = beta1 m + (1 - beta1) g in float carries (besides its old error, times
// beta1) float beta1 against 0.9 (0.2 eps), 1 - beta1 in float against 0.1 (2 eps),
// g * scale rounded (0.5 eps), two products and a sum (1.5 eps): <= 5 eps of the terms'
// magnitudes; v likewise <= 6 eps (g enters squared: 1 eps, 1 - beta2 2 eps, ...). Then
// m_hat, v_hat carry their bias corrections' float casts (computed exactly here) and a
// product each (0.5 eps), the sqrt halves v_hat's relative error (+0.5 eps), + eps and
// the divide 0.5 eps each, wd p and the sum 1 eps, lr * update and p - ... 0.5 eps each.
TEST(AdamW, MatchesTextbookUpdateOverSteps) {
  const ParamLayout layout = small_layout();
  AdamWConfig oc{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  AdamW opt(layout, oc);
  std::vector<float> p = randn(layout.total, 1);
  for (size_t i : {15, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47}) p[i] = 0;
  // Double-precision textbook AdamW (decoupled decay), per element, and the error bounds.
  const size_t n = layout.total;
  std::vector<double> pd(p.begin(), p.end()), m(n, 0), v(n, 0), em(n, 0), ev(n, 0), ep(n, 0);
  std::vector<bool> decay(n, false);
  for (const ParamInfo& pi : layout.params)
    for (size_t i = 0; i < pi.numel; ++i) decay[pi.offset + i] = pi.decay;
  constexpr double eps = 1.1920928955078125e-07;  // 2^-23
  for (int step = 1; step <= 5; ++step) {
    std::vector<float> g = randn(n, 100 + step);
    for (size_t i : {15, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47}) g[i] = 0;
    const float lr = 1e-2f * static_cast<float>(step);
    const float scale = step % 2 ? 0.5f : 1.0f;
    opt.step(p.data(), g.data(), lr, scale);
    const double bc1 = 1 / (1 - std::pow(0.9, step)), bc2 = 1 / (1 - std::pow(0.95, step));
    const double dbc1 = std::fabs(static_cast<float>(1 / (1 - std::pow(static_cast<double>(0.9f), step))) - bc1);
    const double dbc2 = std::fabs(static_cast<float>(1 / (1 - std::pow(static_cast<double>(0.95f), step))) - bc2);
    for (size_t i = 0; i < n; ++i) {
      const double gi = static_cast<double>(g[i]) * scale;
      em[i] = 0.9 * em[i] + 5 * eps * (0.9 * std::fabs(m[i]) + 0.1 * std::fabs(gi));
      ev[i] = 0.95 * ev[i] + 6 * eps * (0.95 * v[i] + 0.05 * gi * gi);
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.95 * v[i] + 0.05 * gi * gi;
      const double mh = m[i] * bc1, vh = v[i] * bc2;
      const double wd = decay[i] ? 0.1 : 0.0;
      const double emh = em[i] * bc1 + std::fabs(m[i]) * dbc1 + 0.5 * eps * std::fabs(mh);
      const double evh = ev[i] * bc2 + v[i] * dbc2 + 0.5 * eps * vh;
      const double sq = std::sqrt(vh), den = sq + 1e-8, upd = mh / den;
      const double esq = (vh > 0 ? evh / (2 * sq) : std::sqrt(evh)) + 0.5 * eps * sq;
      const double eu = emh / den + std::fabs(upd) * (esq + 0.5 * eps * den) / den + 0.5 * eps * std::fabs(upd);
      const double full = upd + wd * pd[i];
      const double eupd = eu + wd * ep[i] + eps * (wd * std::fabs(pd[i]) + std::fabs(full));
      pd[i] -= lr * full;
      ep[i] += lr * eupd + 0.5 * eps * (lr * std::fabs(full) + std::fabs(pd[i]));
    }
  }
  EXPECT_EQ(opt.t(), 5);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_LE(std::fabs(p[i] - pd[i]), ep[i]) << i;
    EXPECT_LE(std::fabs(opt.m()[i] - m[i]), em[i]) << i;
    EXPECT_LE(std::fabs(opt.v()[i] - v[i]), ev[i]) << i;
    for (double r : {std::fabs(p[i] - pd[i]) / ep[i], std::fabs(opt.m()[i] - m[i]) / em[i], std::fabs(opt.v()[i] - v[i]) / ev[i]})
      if (std::isfinite(r)) worst = std::max(worst, r);
  }
  std::printf("  largest fraction of an element's bound used: %.3g\n", worst);
  if (std::getenv("TEDDY_BOUNDS")) std::printf("bound-used AdamW vs textbook %.3g\n", worst);
}

TEST(AdamW, StateRoundTrip) {
  const ParamLayout layout = small_layout();
  AdamW a(layout, AdamWConfig{});
  std::vector<float> p = randn(layout.total, 3), g = randn(layout.total, 4);
  a.step(p.data(), g.data(), 1e-3f);
  a.step(p.data(), g.data(), 1e-3f);
  AdamW b(layout, AdamWConfig{});
  b.set_state(a.t(), a.m(), a.v());
  std::vector<float> pa = p, pb = p;
  a.step(pa.data(), g.data(), 1e-3f);
  b.step(pb.data(), g.data(), 1e-3f);
  EXPECT_EQ(pa, pb);
  EXPECT_EQ(b.t(), 3);
  b.reset();
  EXPECT_EQ(b.t(), 0);
  EXPECT_EQ(b.m()[0], 0.0f);
  EXPECT_THROW(b.set_state(-1, a.m(), a.v()), Error);
}

TEST(AdamW, ValidatesConfig) {
  const ParamLayout layout = small_layout();
  EXPECT_THROW(AdamW(layout, AdamWConfig{.beta1 = 1.0f}), ConfigError);
  EXPECT_THROW(AdamW(layout, AdamWConfig{.beta2 = -0.1f}), ConfigError);
  EXPECT_THROW(AdamW(layout, AdamWConfig{.eps = 0.0f}), ConfigError);
  EXPECT_THROW(AdamW(layout, AdamWConfig{.weight_decay = -1.0f}), ConfigError);
  try {
    AdamW(layout, AdamWConfig{.beta2 = 1.5f});
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("beta2", 0), 0u) << e.what();
  }
}
