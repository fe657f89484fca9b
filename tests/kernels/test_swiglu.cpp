// SwiGLU trio: double reference vs finite differences and vs PyTorch's silu at known
// points, each backend vs float reference over odd sizes and misaligned pointers, +=
// accumulation.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/swiglu.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class SwiGLUBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(SwiGLUBackend);

TEST(SwiGLU, ReferenceKnownValues) {
  // One row, H = 5: gate g, up = 2, so out = 2 * silu(g); silu from torch 1.13 in float64.
  const std::vector<double> gate_up = {-4.0, -1.0, 0.0, 0.5, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0};
  const std::vector<double> silu = {-0.07194483984836623, -0.2689414213699951, 0.0, 0.3112296656009273,
                                    2.8577223804672998};
  std::vector<double> out(5), want(5);
  for (int j = 0; j < 5; ++j) want[j] = 2 * silu[j];
  kr::swiglu_forward_t<double>(out.data(), gate_up.data(), 1, 5);
  // Both double, g * u / (1 + exp(-g)) without cancellation: a few roundings and an exp
  // within an ulp: 16 eps64 relative (0 stays exactly 0).
  EXPECT_TRUE(all_close(out, want, 16 * kEpsF64, 0));
}

TEST(SwiGLU, ReferenceBackwardMatchesFiniteDifferences) {
  for (auto [N, H] : {std::pair{1, 1}, std::pair{3, 7}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " H=" << H);
    auto gate_up = randn<double>(N * 2 * H, 1, 2.0);
    const auto w = randn<double>(N * H, 2);
    std::vector<double> out(N * H);
    auto loss = [&] {
      kr::swiglu_forward_t<double>(out.data(), gate_up.data(), N, H);
      return dot_loss(out, w);
    };
    std::vector<double> dgate_up(gate_up.size());
    kr::swiglu_backward_t<double>(dgate_up.data(), w.data(), gate_up.data(), N, H);
    EXPECT_TRUE(fd_check(loss, gate_up, dgate_up, "dgate_up"));
  }
}

TEST_P(SwiGLUBackend, MatchesReference) {
  for (int N : {1, 3, 17, 64}) {
    for (int H : {1, 7, 33, 768}) {
      SCOPED_TRACE(::testing::Message() << "N=" << N << " H=" << H);
      auto gate_up = randn(N * 2 * H, 60 + N * 1000 + H, 4.0);
      if (H > 3) gate_up[0] = -100.0f, gate_up[1] = 100.0f, gate_up[2] = 0.0f;  // saturated sigmoid
      const auto dout = randn(N * H, 61), dgate_up0 = randn(N * 2 * H, 62);
      std::vector<float> out_r(N * H), dgate_up_r = dgate_up0;
      kr::swiglu_forward(out_r.data(), gate_up.data(), N, H);
      kr::swiglu_backward(dgate_up_r.data(), dout.data(), gate_up.data(), N, H, teddy::kernels::Grad::add);
      Misaligned out_c(N * H), dgate_up_c(dgate_up0), gum(gate_up), doutm(dout);
      kb->swiglu_forward(out_c.p(), gum.p(), N, H);
      kb->swiglu_backward(dgate_up_c.p(), doutm.p(), gum.p(), N, H, teddy::kernels::Grad::add);
      // Pointwise: a few roundings relative to each result's natural scale.
      const double rtol = rtol_for(kEpsF32, 1);
      const auto outv = out_c.vec(), dgv = dgate_up_c.vec();
      for (int i = 0; i < N; ++i) {
        for (int j = 0; j < H; ++j) {
          const int64_t k = int64_t(i) * H + j, kg = int64_t(i) * 2 * H + j, ku = kg + H;
          const double g = gate_up[kg], u = gate_up[ku], d = dout[k];
          // |silu(g)| <= |g|, |silu'(g)| <= 1.1; + 1e-38 (~FLT_MIN): saturated sigmoids give
          // results in the subnormal range, where float keeps an absolute, not relative, step.
          ASSERT_LE(std::fabs(outv[k] - out_r[k]), rtol * std::fabs(g * u) + 1e-38) << "out " << i << "," << j;
          ASSERT_LE(std::fabs(dgv[kg] - dgate_up_r[kg]), rtol * (std::fabs(dgate_up0[kg]) + 1.1 * std::fabs(d * u)) + 1e-38)
              << "dgate " << i << "," << j << " g=" << g;
          ASSERT_LE(std::fabs(dgv[ku] - dgate_up_r[ku]), rtol * (std::fabs(dgate_up0[ku]) + std::fabs(d * g)) + 1e-38)
              << "dup " << i << "," << j << " g=" << g;
        }
      }
    }
  }
}

TEST_P(SwiGLUBackend, BackwardAccumulates) {
  const int N = 5, H = 40;
  const auto gate_up = randn(N * 2 * H, 70, 2.0), dout = randn(N * H, 71);
  std::vector<float> once(N * 2 * H), twice(N * 2 * H);
  kb->swiglu_backward(once.data(), dout.data(), gate_up.data(), N, H, teddy::kernels::Grad::add);
  kb->swiglu_backward(twice.data(), dout.data(), gate_up.data(), N, H, teddy::kernels::Grad::add);
  kb->swiglu_backward(twice.data(), dout.data(), gate_up.data(), N, H, teddy::kernels::Grad::add);
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(twice[i], 2 * once[i], 4 * kEpsF32 * std::fabs(once[i])) << i;
  // Grad::set overwrites (NaN garbage does not survive) with exactly what adding onto zero gives.
  std::vector<float> set(once.size(), std::numeric_limits<float>::quiet_NaN());
  kb->swiglu_backward(set.data(), dout.data(), gate_up.data(), N, H, teddy::kernels::Grad::set);
  EXPECT_EQ(set, once);
}

}  // namespace
