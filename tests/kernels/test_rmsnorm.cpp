// RMSNorm trio: double reference vs finite differences, each backend vs float reference over
// odd sizes and misaligned pointers, += accumulation, thread-count determinism.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/rmsnorm.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class RMSNormBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(RMSNormBackend);

constexpr float kEps = 1e-5f;

TEST(RMSNorm, ReferenceBackwardMatchesFiniteDifferences) {
  for (auto [N, C] : {std::pair{2, 5}, std::pair{3, 16}, std::pair{1, 1}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C);
    auto x = randn<double>(N * C, 1, 1.5, 0.3);
    auto weight = randn<double>(C, 2, 1.0, 1.0);
    const auto w = randn<double>(N * C, 4);  // dL/dout
    std::vector<double> out(N * C), rstd(N);
    auto loss = [&] {
      kr::rmsnorm_forward_t<double>(out.data(), rstd.data(), x.data(), weight.data(), N, C, kEps);
      return dot_loss(out, w);
    };
    loss();
    std::vector<double> dx(N * C), dweight(C);
    kr::rmsnorm_backward_t<double>(dx.data(), dweight.data(), w.data(), x.data(), weight.data(), rstd.data(),
                                   N, C);
    EXPECT_TRUE(fd_check(loss, x, dx, "dinp"));
    EXPECT_TRUE(fd_check(loss, weight, dweight, "dweight"));
  }
}

TEST_P(RMSNormBackend, MatchesReference) {
  for (int N : {1, 3, 17, 64}) {
    for (int C : {1, 7, 33, 768}) {
      SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C);
      const auto x = randn(N * C, 10 + N * 1000 + C, 2.0, 0.5);
      const auto weight = randn(C, 11, 0.5, 1.0);
      const auto dout = randn(N * C, 13);
      const auto dinp0 = randn(N * C, 14), dweight0 = randn(C, 15);

      std::vector<float> out_r(N * C), rstd_r(N);
      kr::rmsnorm_forward(out_r.data(), rstd_r.data(), x.data(), weight.data(), N, C, kEps);
      Misaligned out_c(N * C), rstd_c(N), xm(x), wm(weight);
      kb->rmsnorm_forward(out_c.p(), rstd_c.p(), xm.p(), wm.p(), N, C, kEps);
      const double rtol = rtol_for(kEpsF32, C);
      EXPECT_TRUE(close_scaled(out_c.vec(), out_r, rtol));
      EXPECT_TRUE(close_scaled(rstd_c.vec(), rstd_r, rtol));

      // Backward from the same saved rstd, onto non-zero gradients (+=).
      std::vector<float> dinp_r = dinp0, dweight_r = dweight0;
      kr::rmsnorm_backward(dinp_r.data(), dweight_r.data(), dout.data(), x.data(), weight.data(),
                           rstd_r.data(), N, C);
      Misaligned dinp_c(dinp0), dweight_c(dweight0), doutm(dout), rstdm(rstd_r);
      kb->rmsnorm_backward(dinp_c.p(), dweight_c.p(), doutm.p(), xm.p(), wm.p(), rstdm.p(), N, C);
      // dinp's terms are rstd * dout * weight before they cancel; rounding is relative to that.
      double term_scale = max_abs(dinp_r);
      for (int i = 0; i < N; ++i)
        for (int c = 0; c < C; ++c)
          term_scale = std::max(term_scale, std::fabs(double(rstd_r[i]) * dout[i * C + c] * weight[c]));
      EXPECT_TRUE(all_close(dinp_c.vec(), dinp_r, rtol, rtol * term_scale));
      EXPECT_TRUE(close_scaled(dweight_c.vec(), dweight_r, rtol_for(kEpsF32, N)));
    }
  }
}

TEST_P(RMSNormBackend, BackwardAccumulates) {
  const int N = 17, C = 33;
  const auto x = randn(N * C, 20), weight = randn(C, 21), dout = randn(N * C, 22);
  std::vector<float> out(N * C), rstd(N);
  kb->rmsnorm_forward(out.data(), rstd.data(), x.data(), weight.data(), N, C, kEps);
  auto run = [&](int times) {
    std::vector<float> dinp(N * C), dweight(C);
    for (int k = 0; k < times; ++k)
      kb->rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), x.data(), weight.data(), rstd.data(), N, C);
    return std::vector<std::vector<float>>{dinp, dweight};
  };
  const auto once = run(1), twice = run(2);
  expect_doubled(once, twice, 4 * kEpsF32);
}

TEST_P(RMSNormBackend, BackwardIsDeterministicAcrossThreadCounts) {
  const int N = 64, C = 768;
  const auto x = randn(N * C, 30), weight = randn(C, 31), dout = randn(N * C, 32);
  std::vector<float> out(N * C), rstd(N);
  kb->rmsnorm_forward(out.data(), rstd.data(), x.data(), weight.data(), N, C, kEps);
  const auto results = results_per_thread_count({1, 3, 4}, [&] {
    std::vector<float> dinp(N * C), dweight(C);
    kb->rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), x.data(), weight.data(), rstd.data(), N,
                         C);
    return concat({dinp, dweight});
  });
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

}  // namespace
