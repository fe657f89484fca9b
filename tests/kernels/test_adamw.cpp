// AdamW: each backend (ref: the float reference) against a hand-written double loop over
// several steps (t = 1..5), with and without weight decay, grad_scale != 1,
// some exactly-zero gradients, and a late step (bias corrections near 1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"

namespace {

using namespace teddy::test;

class AdamWBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(AdamWBackend);

struct Hyper {
  float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, wd = 0.1f, grad_scale = 1.0f;
};

// The textbook update (Loshchilov & Hutter; torch.optim.AdamW), state in double.
// Hyperparameters are the float values the kernels receive, widened.
void adamw_double(std::vector<double>& p, const std::vector<float>& g, std::vector<double>& m,
                  std::vector<double>& v, const Hyper& h, int64_t t) {
  const double b1 = h.beta1, b2 = h.beta2;
  for (size_t i = 0; i < p.size(); ++i) {
    const double gi = static_cast<double>(g[i]) * static_cast<double>(h.grad_scale);
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    const double mhat = m[i] / (1 - std::pow(b1, static_cast<double>(t)));
    const double vhat = v[i] / (1 - std::pow(b2, static_cast<double>(t)));
    p[i] -= static_cast<double>(h.lr) *
            (mhat / (std::sqrt(vhat) + static_cast<double>(h.eps)) + static_cast<double>(h.wd) * p[i]);
  }
}

// A sequence of gradients with every 11th element exactly 0 (untouched parameters).
std::vector<std::vector<float>> grad_steps(size_t n, int steps, uint64_t seed) {
  std::vector<std::vector<float>> gs;
  for (int s = 0; s < steps; ++s) {
    auto g = randn(n, seed + s, 0.3);
    for (size_t i = 0; i < n; i += 11) g[i] = 0.0f;
    gs.push_back(g);
  }
  return gs;
}

TEST_P(AdamWBackend, MatchesDoubleLoopOverSteps) {
  const size_t n = 1003;  // odd: exercises vector remainders
  for (float wd : {0.0f, 0.1f}) {
    for (float grad_scale : {1.0f, 0.37f}) {
      SCOPED_TRACE(::testing::Message() << "wd=" << wd << " grad_scale=" << grad_scale);
      Hyper h;
      h.wd = wd;
      h.grad_scale = grad_scale;
      const auto p0 = randn(n, 1, 0.5);
      const auto grads = grad_steps(n, 5, 100);

      std::vector<double> pd(p0.begin(), p0.end()), md(n), vd(n);
      std::vector<float> pc = p0, mc(n), vc(n);
      for (int64_t t = 1; t <= 5; ++t) {
        SCOPED_TRACE(::testing::Message() << "t=" << t);
        const auto& g = grads[t - 1];
        adamw_double(pd, g, md, vd, h, t);
        kb->adamw_update(pc.data(), g.data(), mc.data(), vc.data(), n, h.lr, h.beta1, h.beta2, h.eps, h.wd, t,
                         h.grad_scale);
        // Error grows by a few float roundings per step; moments can cancel toward
        // 0, so the absolute floor is at each tensor's scale.
        const double rtol = rtol_for(kEpsF32, t);
        EXPECT_TRUE(all_close(pc, pd, rtol, rtol * max_abs(pd)));
        EXPECT_TRUE(all_close(mc, md, rtol, rtol * max_abs(md)));
        EXPECT_TRUE(all_close(vc, vd, rtol, rtol * max_abs(vd)));
      }
    }
  }
}

TEST_P(AdamWBackend, FirstStepMovesEachParameterByAboutLr) {
  // At t=1, mhat/sqrt(vhat) = sign(g): every parameter with g != 0 moves by lr
  // (plus decay), whatever the gradient's size. Catches a wrong bias correction.
  const size_t n = 64;
  Hyper h;
  h.wd = 0.0f;
  const auto p0 = randn(n, 5);
  auto g = randn(n, 6, 1e-3);
  for (auto& x : g) x = std::copysign(std::max(std::fabs(x), 1e-4f), x);  // |g| >> eps
  std::vector<float> p = p0, m(n), v(n);
  kb->adamw_update(p.data(), g.data(), m.data(), v.data(), n, h.lr, h.beta1, h.beta2, h.eps, h.wd, 1, 1.0f);
  // Exactly, the move is lr |g| / (|g| + eps_adam): within lr eps_adam / |g| of lr. In
  // float, m_hat and sqrt(v_hat) each carry a few roundings (1 - beta1 times its
  // inverse, the bias corrections: <= 4 eps of lr in all), and p - lr * u rounds to
  // within eps/2 |p|, as does the test's own subtraction p0 - p.
  for (size_t i = 0; i < n; ++i)
    EXPECT_NEAR(p0[i] - p[i], g[i] > 0 ? h.lr : -h.lr,
                h.lr * (h.eps / std::fabs(g[i]) + 4 * kEpsF32) + kEpsF32 * std::fabs(p0[i]))
        << i;
}

TEST_P(AdamWBackend, LateStepMatchesDoubleLoop) {
  // Continue from a warm state at t = 10000, where 1 - beta2^t needs care.
  const size_t n = 257;
  Hyper h;
  const auto p0 = randn(n, 7), m0 = randn(n, 8, 0.01), g = randn(n, 10, 0.3);
  auto v0 = randn(n, 9, 1e-4);
  for (auto& x : v0) x = x * x;
  std::vector<double> pd(p0.begin(), p0.end()), md(m0.begin(), m0.end()), vd(v0.begin(), v0.end());
  adamw_double(pd, g, md, vd, h, 10000);
  std::vector<float> pc = p0, mc = m0, vc = v0;
  kb->adamw_update(pc.data(), g.data(), mc.data(), vc.data(), n, h.lr, h.beta1, h.beta2, h.eps, h.wd, 10000,
                   h.grad_scale);
  const double rtol = rtol_for(kEpsF32, 1);
  EXPECT_TRUE(all_close(pc, pd, rtol, rtol * max_abs(pd)));
  EXPECT_TRUE(all_close(mc, md, rtol, rtol * max_abs(md)));
  EXPECT_TRUE(all_close(vc, vd, rtol, rtol * max_abs(vd)));
}

TEST_P(AdamWBackend, ZeroLengthIsANoOp) {
  kb->adamw_update(nullptr, nullptr, nullptr, nullptr, 0, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f);
}

}  // namespace
