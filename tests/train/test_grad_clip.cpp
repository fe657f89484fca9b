#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "teddy/train/optim/grad_clip.h"

using namespace teddy;

TEST(GradClip, NormIsGlobalL2) {
  const std::vector<float> g{3, 0, -4, 0};
  EXPECT_DOUBLE_EQ(grad_norm(g.data(), g.size()), 5.0);
  std::vector<float> big(300001);
  double want = 0;
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<float>((i % 7) - 3) * 0.25f;
    want += static_cast<double>(big[i]) * big[i];
  }
  // Both sum the same exact float squares in double, in other orders: positive terms, so
  // each sum is within n u64 of the exact one (worst case, u64 = eps64/2), the square
  // roots within n u64 / 2 + u64: together (n + 2) u64.
  const double u64 = std::numeric_limits<double>::epsilon() / 2;
  EXPECT_NEAR(grad_norm(big.data(), big.size()), std::sqrt(want), (big.size() + 2) * u64 * std::sqrt(want));
  EXPECT_EQ(grad_norm(big.data(), 0), 0.0);
}

TEST(GradClip, ScaleMatchesTorchRule) {
  EXPECT_FLOAT_EQ(clip_scale(5.0, 1.0f), static_cast<float>(1.0 / (5.0 + 1e-6)));
  EXPECT_FLOAT_EQ(clip_scale(5.0, 2.5f), static_cast<float>(2.5 / (5.0 + 1e-6)));
  EXPECT_EQ(clip_scale(0.5, 1.0f), 1.0f);  // under the limit: untouched
  // At the limit torch still scales by 1/(1 + 1e-6): so do we.
  EXPECT_FLOAT_EQ(clip_scale(1.0, 1.0f), static_cast<float>(1.0 / (1.0 + 1e-6)));
  EXPECT_LT(clip_scale(1.0, 1.0f), 1.0f);
  EXPECT_EQ(clip_scale(100.0, 0.0f), 1.0f);   // disabled
  EXPECT_EQ(clip_scale(100.0, -1.0f), 1.0f);  // disabled
  EXPECT_EQ(clip_scale(std::numeric_limits<double>::infinity(), 1.0f), 1.0f);
  EXPECT_EQ(clip_scale(std::nan(""), 1.0f), 1.0f);
  EXPECT_EQ(clip_scale(0.0, 1.0f), 1.0f);
}
