// Cross-entropy trio: double reference dlogits vs finite differences of
// dloss*sum(losses); each backend vs float reference over odd N, V, padded Vp and ignored
// rows; padding and ignored rows zeroed; aliasing dlogits == logits; large
// logits; invalid targets rejected.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/crossentropy.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class CrossEntropyBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(CrossEntropyBackend);

constexpr int kIgnore = -100;

// Targets in [0, V), every `ignore_every`-th row (if > 0) set to kIgnore.
std::vector<int32_t> make_targets(int N, int V, int ignore_every, uint64_t seed) {
  auto t = randint(N, 0, V, seed);
  if (ignore_every > 0)
    for (int i = 0; i < N; i += ignore_every) t[i] = kIgnore;
  return t;
}

TEST(CrossEntropy, ReferenceBackwardMatchesFiniteDifferences) {
  const int N = 4, V = 7, Vp = 9;
  const double dloss = 0.37;
  auto logits = randn<double>(N * Vp, 1, 2.0);
  const auto targets = make_targets(N, V, 3, 2);  // rows 0 and 3 ignored
  std::vector<double> losses(N);
  auto loss = [&] {
    return dloss * kr::crossentropy_forward_backward_t<double>(losses.data(), nullptr, logits.data(),
                                                               targets.data(), N, V, Vp, kIgnore, dloss);
  };
  std::vector<double> dlogits(N * Vp, 99.0);  // set, not added: the 99s must vanish
  kr::crossentropy_forward_backward_t<double>(losses.data(), dlogits.data(), logits.data(), targets.data(), N, V,
                                              Vp, kIgnore, dloss);
  EXPECT_TRUE(fd_check(loss, logits, dlogits, "dlogits"));
}

TEST_P(CrossEntropyBackend, MatchesReference) {
  struct Case { int N, V, Vp, ignore_every; };
  const Case cases[] = {{1, 1, 1, 0},     {3, 5, 8, 2},       {17, 130, 192, 5}, {65, 1000, 1024, 7},
                        {130, 17, 17, 0}, {4, 50257, 50304, 3}};
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << "N=" << c.N << " V=" << c.V << " Vp=" << c.Vp);
    const uint64_t seed = 10 + c.N * 100000 + c.V;
    auto logits = randn(static_cast<size_t>(c.N) * c.Vp, seed, 3.0, 1.0);
    for (int i = 0; i < c.N; ++i)  // padding holds garbage that must not matter
      for (int j = c.V; j < c.Vp; ++j) logits[static_cast<size_t>(i) * c.Vp + j] = 1e30f;
    const auto targets = make_targets(c.N, c.V, c.ignore_every, seed + 1);
    const float dloss = 1.0f / 7.0f;

    std::vector<float> losses_r(c.N), dlogits_r(logits.size());
    const double sum_r = kr::crossentropy_forward_backward(losses_r.data(), dlogits_r.data(), logits.data(),
                                                           targets.data(), c.N, c.V, c.Vp, kIgnore, dloss);
    std::vector<float> losses_c(c.N), dlogits_c(logits.size(), std::numeric_limits<float>::quiet_NaN());
    const double sum_c = kb->crossentropy_forward_backward(losses_c.data(), dlogits_c.data(), logits.data(),
                                                           targets.data(), c.N, c.V, c.Vp, kIgnore, dloss);
    const double rtol = rtol_for(kEpsF32, c.V);
    EXPECT_TRUE(close_scaled(losses_c, losses_r, rtol));
    EXPECT_NEAR(sum_c, sum_r, rtol * std::max(1.0, std::fabs(sum_r)));
    EXPECT_TRUE(close_scaled(dlogits_c, dlogits_r, rtol));

    // Ignored rows: loss 0 and an all-zero gradient row; padding columns exactly 0.
    for (int i = 0; i < c.N; ++i) {
      const float* row = dlogits_c.data() + static_cast<size_t>(i) * c.Vp;
      if (targets[i] == kIgnore) {
        EXPECT_EQ(losses_c[i], 0.0f) << "row " << i;
        EXPECT_TRUE(std::all_of(row, row + c.Vp, [](float v) { return v == 0.0f; })) << "row " << i;
      } else {
        EXPECT_TRUE(std::all_of(row + c.V, row + c.Vp, [](float v) { return v == 0.0f; })) << "row " << i;
        // softmax - onehot sums to 0 over the row.
        double s = 0;
        for (int j = 0; j < c.V; ++j) s += row[j];
        EXPECT_NEAR(s, 0.0, rtol * dloss) << "row " << i;
      }
    }

    // Without dlogits: the same losses.
    std::vector<float> losses_n(c.N);
    const double sum_n = kb->crossentropy_forward_backward(losses_n.data(), nullptr, logits.data(), targets.data(),
                                                           c.N, c.V, c.Vp, kIgnore, dloss);
    EXPECT_EQ(losses_n, losses_c);
    EXPECT_EQ(sum_n, sum_c);

    // In place: dlogits aliasing logits gives the very same numbers.
    std::vector<float> inplace = logits, losses_a(c.N);
    const double sum_a = kb->crossentropy_forward_backward(losses_a.data(), inplace.data(), inplace.data(),
                                                           targets.data(), c.N, c.V, c.Vp, kIgnore, dloss);
    EXPECT_EQ(inplace, dlogits_c);
    EXPECT_EQ(losses_a, losses_c);
    EXPECT_EQ(sum_a, sum_c);
  }
}

TEST_P(CrossEntropyBackend, LargeLogitsStayFinite) {
  const int N = 8, V = 300, Vp = 320;
  auto logits = randn(N * Vp, 60, 50.0, 1e4);  // exp() of these would overflow without max-subtraction
  const auto targets = make_targets(N, V, 0, 61);
  std::vector<float> losses_r(N), dlogits_r(N * Vp), losses_c(N), dlogits_c(N * Vp);
  kr::crossentropy_forward_backward(losses_r.data(), dlogits_r.data(), logits.data(), targets.data(), N, V, Vp,
                                    kIgnore, 1.0f);
  kb->crossentropy_forward_backward(losses_c.data(), dlogits_c.data(), logits.data(), targets.data(), N, V, Vp,
                                    kIgnore, 1.0f);
  for (float v : losses_c) EXPECT_TRUE(std::isfinite(v));
  // Both kernels read the same floats and subtract the max exactly (Sterbenz: the
  // logits are within a factor 2 of each other), so the 1e4 offset costs nothing; what
  // is left is the log of a sum of V exps with relative error rtol: an absolute error of
  // rtol in the loss (the atol, for losses below 1), plus the loss's own storage.
  EXPECT_TRUE(all_close(losses_c, losses_r, rtol_for(kEpsF32, V), rtol_for(kEpsF32, V)));
  EXPECT_TRUE(close_scaled(dlogits_c, dlogits_r, rtol_for(kEpsF32, V)));
}

TEST_P(CrossEntropyBackend, AllRowsIgnoredGivesZero) {
  const int N = 3, V = 5, Vp = 8;
  const auto logits = randn(N * Vp, 70);
  const std::vector<int32_t> targets(N, kIgnore);
  std::vector<float> losses(N, 5.0f), dlogits(N * Vp, 5.0f);
  EXPECT_EQ(kb->crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), N, V,
                                              Vp, kIgnore, 1.0f),
            0.0);
  EXPECT_EQ(losses, std::vector<float>(N, 0.0f));
  EXPECT_EQ(dlogits, std::vector<float>(N * Vp, 0.0f));
}

TEST_P(CrossEntropyBackend, RejectsTargetsOutOfRange) {
  const int N = 3, V = 5, Vp = 8;
  const auto logits = randn(N * Vp, 80);
  std::vector<float> losses(N), dlogits(N * Vp);
  for (int32_t bad : {5, 7, -1}) {  // 5, 7: in the padding or beyond; -1: not ignore_index
    const std::vector<int32_t> targets = {0, bad, 1};
    EXPECT_THROW(kb->crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), N,
                                                   V, Vp, kIgnore, 1.0f),
                 teddy::Error);
    EXPECT_THROW(kr::crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), N,
                                                   V, Vp, kIgnore, 1.0f),
                 teddy::Error);
  }
}

TEST_P(CrossEntropyBackend, IsDeterministicAcrossThreadCounts) {
  const int N = 37, V = 1000, Vp = 1024;
  const auto logits = randn(N * Vp, 90, 2.0);
  const auto targets = make_targets(N, V, 4, 91);
  std::vector<double> sums;
  const auto results = results_per_thread_count({1, 2, 3}, [&] {
    std::vector<float> losses(N), dlogits(N * Vp);
    sums.push_back(kb->crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(),
                                                     N, V, Vp, kIgnore, 0.5f));
    return concat({dlogits, losses});
  });
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
  EXPECT_EQ(sums[0], sums[1]);
  EXPECT_EQ(sums[0], sums[2]);
}

}  // namespace
