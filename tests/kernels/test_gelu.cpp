// GELU (tanh approximation) trio: double reference vs finite differences and vs
// PyTorch's gelu(approximate="tanh") formula at known points, each backend vs float
// reference over odd sizes (including the tails where exp saturates) and
// misaligned pointers, += accumulation.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/gelu.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class GeluBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(GeluBackend);

TEST(Gelu, ReferenceKnownValues) {
  // torch.nn.functional.gelu(x, approximate="tanh") in float64 (torch 1.13).
  const std::vector<double> x = {-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0};
  const std::vector<double> want = {-0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0.0,
                                    0.34571400982514394,   0.8411919906082768,   1.954597694087775};
  std::vector<double> out(x.size());
  kr::gelu_forward_t<double>(out.data(), x.data(), static_cast<int64_t>(x.size()));
  // Both double (tanh within an ulp or two), but at x = -3, 1 + tanh(...) = 0.0024 loses
  // a factor 1 / 0.0024 = 420 to cancellation: ~420 x 4 eps64 = 3.7e-13 relative.
  EXPECT_TRUE(all_close(out, want, 1e-12, 1e-15));
}

TEST(Gelu, ReferenceBackwardMatchesFiniteDifferences) {
  auto x = randn<double>(50, 1, 2.0);
  const auto w = randn<double>(50, 2);
  std::vector<double> out(x.size());
  auto loss = [&] {
    kr::gelu_forward_t<double>(out.data(), x.data(), static_cast<int64_t>(x.size()));
    return dot_loss(out, w);
  };
  std::vector<double> dx(x.size());
  kr::gelu_backward_t<double>(dx.data(), w.data(), x.data(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(fd_check(loss, x, dx, "dinp"));
}

TEST_P(GeluBackend, MatchesReference) {
  // Sizes straddle the vector width and the OpenMP threshold; scale 4 reaches the
  // saturated tails (x < -5: gelu ~ 0; x > 5: gelu ~ x).
  for (int64_t n : {1, 3, 17, 64, 1023, 100003}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    auto x = randn(n, 40 + n, 4.0);
    if (n > 10) x[0] = -30.0f, x[1] = 30.0f, x[2] = 0.0f, x[3] = -1e-30f;
    const auto dout = randn(n, 41), dinp0 = randn(n, 42);
    std::vector<float> out_r(n), dinp_r = dinp0;
    kr::gelu_forward(out_r.data(), x.data(), n);
    kr::gelu_backward(dinp_r.data(), dout.data(), x.data(), n, teddy::kernels::Grad::add);
    Misaligned out_c(n), dinp_c(dinp0), xm(x), doutm(dout);
    kb->gelu_forward(out_c.p(), xm.p(), n);
    kb->gelu_backward(dinp_c.p(), doutm.p(), xm.p(), n, teddy::kernels::Grad::add);
    // Pointwise: a few roundings (exp, divide) relative to the output's scale, |x|
    // for the forward and |dout| * O(1) for the backward.
    const double rtol = rtol_for(kEpsF32, 1);
    const auto outv = out_c.vec(), dinpv = dinp_c.vec();
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(outv[i] - out_r[i]), rtol * (std::fabs(x[i]) + 1e-30)) << "out[" << i << "] x=" << x[i];
      ASSERT_LE(std::fabs(dinpv[i] - dinp_r[i]), rtol * (std::fabs(dinp0[i]) + std::fabs(dout[i]) * 2))
          << "dinp[" << i << "] x=" << x[i];
    }
  }
}

TEST_P(GeluBackend, BackwardAccumulates) {
  const int64_t n = 1000;
  const auto x = randn(n, 50, 2.0), dout = randn(n, 51);
  std::vector<float> once(n), twice(n);
  kb->gelu_backward(once.data(), dout.data(), x.data(), n, teddy::kernels::Grad::add);
  kb->gelu_backward(twice.data(), dout.data(), x.data(), n, teddy::kernels::Grad::add);
  kb->gelu_backward(twice.data(), dout.data(), x.data(), n, teddy::kernels::Grad::add);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(twice[i], 2 * once[i], 4 * kEpsF32 * std::fabs(once[i])) << i;
  // Grad::set overwrites (NaN garbage does not survive) with exactly what adding onto zero gives.
  std::vector<float> set(n, std::numeric_limits<float>::quiet_NaN());
  kb->gelu_backward(set.data(), dout.data(), x.data(), n, teddy::kernels::Grad::set);
  EXPECT_EQ(set, once);
}

}  // namespace
