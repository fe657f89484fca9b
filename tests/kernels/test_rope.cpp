// RoPE trio: double reference vs HF's rotate_half formula and finite differences,
// each backend vs float reference over odd sizes, strided rows (RoPE on the q part of a qkv
// row) and misaligned pointers; in place == out of place; backward inverts forward;
// += accumulation; untouched gaps between rows.
#include <cmath>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/rope.h"
#include "teddy/model/rope_freqs.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class RopeBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(RopeBackend);

constexpr float kTheta = 10000.0f;

// The unscaled table theta^(-2j/HS) for head size HS (kept alive for the test's calls).
const double* freqs(int HS) {
  static std::vector<std::vector<double>> tables(1025);
  if (tables[HS].empty()) tables[HS] = teddy::rope_inv_freq(kTheta, HS, teddy::RopeScaling{});
  return tables[HS].data();
}

TEST(Rope, ReferenceMatchesHfRotateHalf) {
  // HF: out = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), computed with torch
  // 1.13 in float64 for HS = 4, theta = 1e4, positions 3 and 100.
  const std::vector<double> x = {1.0, 2.0, 3.0, 4.0, -0.5, 0.25, 2.0, -1.0};
  const std::vector<double> want = {-1.413352520780047, 1.8791180666879925, -2.828857481741469,
                                    4.058191135400942,  0.5815718460756756, 0.9765465612749314,
                                    1.9778205651302472, -0.32993455966616564};
  const std::vector<int32_t> pos = {3, 100};
  std::vector<double> out(8);
  kr::rope_forward_t<double>(out.data(), x.data(), pos.data(), 2, 4, 1, 4, freqs(4));
  // Both double, the angles pos * theta^(-2j/HS) computed two ways (pow against torch's
  // 1 / theta ** x): a few eps64 relative in the angle, pos = 100 times that absolute in
  // cos and sin, times |x| <= 4: 16 eps64 * 100 * 4 = 1.4e-12 covers it.
  EXPECT_TRUE(all_close(out, want, 0, 16 * kEpsF64 * 100 * 4));
}

TEST(Rope, ReferenceBackwardMatchesFiniteDifferences) {
  // Two heads of 6 on rows of stride 15 (3 trailing floats the op must ignore).
  const int N = 3, n_heads = 2, HS = 6, stride = 15;
  const std::vector<int32_t> pos = {0, 7, 31};
  auto x = randn<double>(N * stride, 1);
  const auto w = randn<double>(N * stride, 2);
  std::vector<double> out(N * stride);
  auto loss = [&] {
    kr::rope_forward_t<double>(out.data(), x.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
    return dot_loss(out, w);
  };
  std::vector<double> dx(N * stride);
  kr::rope_backward_t<double>(dx.data(), w.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  EXPECT_TRUE(fd_check(loss, x, dx, "dinp"));
}

TEST_P(RopeBackend, MatchesReference) {
  for (int N : {1, 3, 17, 64}) {
    for (auto [n_heads, HS] : {std::pair{1, 2}, std::pair{3, 8}, std::pair{12, 64}, std::pair{2, 128}}) {
      for (int gap : {0, 5}) {
        SCOPED_TRACE(::testing::Message() << "N=" << N << " heads=" << n_heads << " HS=" << HS << " gap=" << gap);
        const int stride = n_heads * HS + gap;
        auto pos = randint(N, 0, 4096, 200 + N);
        pos[0] = N > 1 ? 131071 : 0;  // long-context position: angles up to ~1.3e5 rad
        const auto x = randn(N * stride, 201), dout = randn(N * stride, 202), dinp0 = randn(N * stride, 203);
        std::vector<float> out_r(x), dinp_r(dinp0);  // gaps keep their values
        kr::rope_forward(out_r.data(), x.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
        kr::rope_backward(dinp_r.data(), dout.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
        Misaligned out_c(x), dinp_c(dinp0), xm(x), doutm(dout);
        kb->rope_forward(out_c.p(), xm.p(), pos.data(), N, stride, n_heads, HS, freqs(HS));
        kb->rope_backward(dinp_c.p(), doutm.p(), pos.data(), N, stride, n_heads, HS, freqs(HS));
        // Each output is x0 cos -/+ x1 sin (plus the prior gradient): a few roundings
        // relative to the magnitudes of its terms.
        const double rtol = rtol_for(kEpsF32, 2);
        const auto outv = out_c.vec(), dinpv = dinp_c.vec();
        for (int i = 0; i < N; ++i) {
          for (int k = 0; k < stride; ++k) {
            const int64_t e = int64_t(i) * stride + k;
            const int64_t pair = k < n_heads * HS ? (k % HS < HS / 2 ? e + HS / 2 : e - HS / 2) : e;
            const double xs = std::fabs(x[e]) + std::fabs(x[pair]);
            const double ds = std::fabs(dinp0[e]) + std::fabs(dout[e]) + std::fabs(dout[pair]);
            ASSERT_LE(std::fabs(outv[e] - out_r[e]), rtol * xs) << "out row " << i << " col " << k;
            ASSERT_LE(std::fabs(dinpv[e] - dinp_r[e]), rtol * ds) << "dinp row " << i << " col " << k;
          }
        }
      }
    }
  }
}

TEST_P(RopeBackend, InPlaceEqualsOutOfPlace) {
  const int N = 37, n_heads = 4, HS = 64, stride = 3 * n_heads * HS;  // q part of a qkv row
  const auto pos = randint(N, 0, 2048, 210);
  const auto x = randn(N * stride, 211);
  std::vector<float> out(x), inplace(x);
  kb->rope_forward(out.data(), x.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  kb->rope_forward(inplace.data(), inplace.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  EXPECT_EQ(inplace, out);
}

TEST_P(RopeBackend, BackwardInvertsForward) {
  // R(-angle) R(angle) = I: backward of the rotated rows (into zeros) gives the input.
  const int N = 29, n_heads = 3, HS = 32, stride = n_heads * HS;
  const auto pos = randint(N, 0, 100000, 220);
  const auto x = randn(N * stride, 221);
  std::vector<float> y(N * stride), back(N * stride);
  kb->rope_forward(y.data(), x.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  kb->rope_backward(back.data(), y.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  EXPECT_TRUE(all_close(back, x, 0, 8 * kEpsF32 * 4));      // |x| < ~4: absolute tolerance
  EXPECT_GT(rel_error(y.data(), x.data(), x.size()), 0.1);  // and it did rotate
}

TEST_P(RopeBackend, BackwardAccumulates) {
  const int N = 9, n_heads = 2, HS = 16, stride = n_heads * HS;
  const auto pos = randint(N, 0, 512, 230);
  const auto dout = randn(N * stride, 231);
  std::vector<float> once(N * stride), twice(N * stride);
  kb->rope_backward(once.data(), dout.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  kb->rope_backward(twice.data(), dout.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  kb->rope_backward(twice.data(), dout.data(), pos.data(), N, stride, n_heads, HS, freqs(HS));
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(twice[i], 2 * once[i], 4 * kEpsF32 * std::fabs(once[i])) << i;
}

TEST_P(RopeBackend, OddHeadSizeThrows) {
  std::vector<float> x(6);
  const std::vector<int32_t> pos = {1};
  EXPECT_THROW(kb->rope_forward(x.data(), x.data(), pos.data(), 1, 6, 2, 3, freqs(4)), teddy::Error);
  EXPECT_THROW(kr::rope_forward(x.data(), x.data(), pos.data(), 1, 6, 2, 3, freqs(4)), teddy::Error);
}

}  // namespace
