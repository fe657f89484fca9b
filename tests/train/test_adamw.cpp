#include <gtest/gtest.h>

#include <cmath>
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

TEST(AdamW, MatchesTextbookUpdateOverSteps) {
  const ParamLayout layout = small_layout();
  AdamWConfig oc{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  AdamW opt(layout, oc);
  std::vector<float> p = randn(layout.total, 1);
  for (size_t i : {15, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47}) p[i] = 0;
  // Double-precision textbook AdamW (decoupled decay), per element.
  std::vector<double> pd(p.begin(), p.end()), m(layout.total, 0), v(layout.total, 0);
  std::vector<bool> decay(layout.total, false);
  for (const ParamInfo& pi : layout.params)
    for (size_t i = 0; i < pi.numel; ++i) decay[pi.offset + i] = pi.decay;
  for (int step = 1; step <= 5; ++step) {
    std::vector<float> g = randn(layout.total, 100 + step);
    for (size_t i : {15, 23, 24, 25, 26, 27, 28, 29, 30, 31, 40, 41, 42, 43, 44, 45, 46, 47}) g[i] = 0;
    const float lr = 1e-2f * static_cast<float>(step);
    const float scale = step % 2 ? 0.5f : 1.0f;
    opt.step(p.data(), g.data(), lr, scale);
    for (size_t i = 0; i < layout.total; ++i) {
      const double gi = static_cast<double>(g[i]) * scale;
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.95 * v[i] + 0.05 * gi * gi;
      const double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.95, step));
      const double wd = decay[i] ? 0.1 : 0.0;
      pd[i] -= lr * (mh / (std::sqrt(vh) + 1e-8) + wd * pd[i]);
    }
  }
  EXPECT_EQ(opt.t(), 5);
  for (size_t i = 0; i < layout.total; ++i) {
    EXPECT_NEAR(p[i], pd[i], 1e-5 * (1 + std::fabs(pd[i]))) << i;
    EXPECT_NEAR(opt.m()[i], m[i], 1e-5 * (1 + std::fabs(m[i]))) << i;
    EXPECT_NEAR(opt.v()[i], v[i], 1e-5 * (1 + std::fabs(v[i]))) << i;
  }
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
