#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "teddy/core/error.h"
#include "teddy/train/optim/lr_schedule.h"

using namespace teddy;

TEST(LrSchedule, WarmupThenCosineThenFloor) {
  LrSchedule s{.lr = 1.0f, .warmup_steps = 10, .total_steps = 110, .min_lr_ratio = 0.1f};
  s.validate();
  EXPECT_FLOAT_EQ(s.at(0), 0.1f);   // (0+1)/10: the first step already moves
  EXPECT_FLOAT_EQ(s.at(4), 0.5f);
  EXPECT_FLOAT_EQ(s.at(9), 1.0f);   // last warmup step reaches the peak
  EXPECT_FLOAT_EQ(s.at(10), 1.0f);  // cosine starts at the peak
  const double c = 0.5 * (1 + std::cos(std::numbers::pi * 0.25));
  EXPECT_FLOAT_EQ(s.at(35), static_cast<float>(0.1 + c * 0.9));
  EXPECT_FLOAT_EQ(s.at(60), 0.55f);  // halfway: mean of peak and floor
  EXPECT_GT(s.at(109), 0.1f);
  EXPECT_FLOAT_EQ(s.at(110), 0.1f);
  EXPECT_FLOAT_EQ(s.at(1000000), 0.1f);
  for (int64_t i = 10; i < 110; ++i) EXPECT_LE(s.at(i + 1), s.at(i)) << i;  // monotone decay
}

TEST(LrSchedule, NoWarmupAndConstant) {
  LrSchedule s{.lr = 3e-4f, .warmup_steps = 0, .total_steps = 100, .min_lr_ratio = 0.0f};
  EXPECT_FLOAT_EQ(s.at(0), 3e-4f);
  EXPECT_FLOAT_EQ(s.at(100), 0.0f);
  LrSchedule k{.lr = 2e-3f, .warmup_steps = 4, .total_steps = 10, .min_lr_ratio = 0.1f, .cosine = false};
  EXPECT_FLOAT_EQ(k.at(1), 1e-3f);
  EXPECT_FLOAT_EQ(k.at(5), 2e-3f);
  EXPECT_FLOAT_EQ(k.at(500), 2e-3f);
  // warmup == total: warm up, then straight to the floor.
  LrSchedule w{.lr = 1.0f, .warmup_steps = 5, .total_steps = 5, .min_lr_ratio = 0.5f};
  w.validate();
  EXPECT_FLOAT_EQ(w.at(4), 1.0f);
  EXPECT_FLOAT_EQ(w.at(5), 0.5f);
}

TEST(LrSchedule, ValidatesFields) {
  auto bad = [](LrSchedule s, const char* field) {
    try {
      s.validate();
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(field, 0), 0u) << e.what();
    }
  };
  bad({.lr = 0.0f, .warmup_steps = 0, .total_steps = 10}, "lr");
  bad({.lr = NAN, .warmup_steps = 0, .total_steps = 10}, "lr");
  bad({.lr = 1.0f, .warmup_steps = -1, .total_steps = 10}, "warmup_steps");
  bad({.lr = 1.0f, .warmup_steps = 11, .total_steps = 10}, "warmup_steps");
  bad({.lr = 1.0f, .warmup_steps = 0, .total_steps = 0}, "total_steps");
  bad({.lr = 1.0f, .warmup_steps = 0, .total_steps = 10, .min_lr_ratio = 1.5f}, "min_lr_ratio");
  bad({.lr = 1.0f, .warmup_steps = 0, .total_steps = 10, .min_lr_ratio = -0.1f}, "min_lr_ratio");
  EXPECT_THROW(LrSchedule{}.at(-1), Error);
}
