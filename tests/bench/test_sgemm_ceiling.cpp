// The sgemm ceiling measurement: positive, finite, every shape timed at least
// twice, thread settings restored. No timing assertions beyond "> 0".
#include <omp.h>

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "teddy/core/error.h"
#include "bench/sgemm_ceiling.h"

namespace {

TEST(SgemmCeiling, MeasuresEveryShapeAndRestoresThreads) {
  const int saved = omp_get_max_threads();
  const auto r = teddy::measure_sgemm_ceiling(1, 0.01);  // tiny budget: minimum calls only
  EXPECT_EQ(omp_get_max_threads(), saved);
  EXPECT_EQ(r.threads, 1);
  ASSERT_EQ(r.shapes.size(), 15u);  // forward, dinp, dweight of qkv, attn proj, fc, mlp proj, lm head
  double weights = 0;
  for (const auto& s : r.shapes) weights += s.weight;
  // 15 FLOP fractions (exact integer FLOPs, one rounding each) summed in double: <= 15 u64.
  constexpr double kEps64 = std::numeric_limits<double>::epsilon();
  EXPECT_NEAR(weights, 1.0, 15 * kEps64);
  for (const auto& s : r.shapes) {
    SCOPED_TRACE(s.name);
    EXPECT_GE(s.calls, 2);
    EXPECT_GT(s.best_s, 0.0);
    EXPECT_LE(s.best_s, s.median_s);
    EXPECT_GE(s.best_gflops, s.median_gflops);
  }
  EXPECT_TRUE(std::isfinite(r.gflops));
  EXPECT_GT(r.gflops, 0.0);
  EXPECT_GE(r.gflops, r.median_gflops);
  EXPECT_TRUE(std::isfinite(r.five_shape_gflops));
  EXPECT_GT(r.five_shape_gflops, 0.0);
  // The three GEMMs of a linear carry equal weight; the lm head is ~31% of the FLOPs.
  double head = 0;
  for (const auto& s : r.shapes)
    if (s.name.rfind("lm head", 0) == 0) {
      EXPECT_EQ(s.M * static_cast<double>(s.N) * s.K, 512.0 * 50304 * 768);
      head += s.weight;
    }
  EXPECT_NEAR(head, 50304.0 * 768 / (12.0 * 768 * (2304 + 768 + 3072 + 3072) + 50304.0 * 768),
              15 * kEps64);  // the same ratio: 3 of the fractions against one division, a few u64
}

TEST(SgemmCeiling, RejectsNonPositiveBudget) {
  EXPECT_THROW(teddy::measure_sgemm_gflops(1, 0.0), teddy::Error);
}

}  // namespace
