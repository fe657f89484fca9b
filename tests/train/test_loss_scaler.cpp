// Dynamic loss scaling: the schedule (start 2^16, halve and skip on inf/NaN, double
// after 1000 clean steps), exactness of scaled steps, and recovery from overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/tiny_models.h"
#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/loss_scaler.h"
#include "teddy/train/train_step.h"

using namespace teddy;

namespace {

TEST(LossScaler, ScheduleAsSpecified) {
  LossScaler s;  // defaults: 2^16, 1000
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_FALSE(s.update(false));  // overflow: skip, halve
  EXPECT_EQ(s.scale(), 32768.0f);
  EXPECT_EQ(s.skipped(), 1);
  for (int i = 0; i < 999; ++i) EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 32768.0f);  // 999 clean steps: not yet
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 65536.0f);  // the 1000th doubles
  EXPECT_EQ(s.clean_streak(), 0);
  for (int i = 0; i < 500; ++i) s.update(true);
  EXPECT_FALSE(s.update(false));  // an overflow resets the streak
  EXPECT_EQ(s.scale(), 32768.0f);
  EXPECT_EQ(s.clean_streak(), 0);
  for (int i = 0; i < 999; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 32768.0f);
  EXPECT_EQ(s.skipped(), 2);
  // Never reaches 0 however often it overflows.
  for (int i = 0; i < 400; ++i) s.update(false);
  EXPECT_GT(s.scale(), 0.0f);
}

TEST(LossScaler, ConfigIsValidated) {
  EXPECT_THROW(LossScaler(LossScalerConfig{3.0f, 1000}), ConfigError);  // not a power of two
  EXPECT_THROW(LossScaler(LossScalerConfig{0.0f, 1000}), ConfigError);
  EXPECT_THROW(LossScaler(LossScalerConfig{INFINITY, 1000}), ConfigError);
  EXPECT_THROW(LossScaler(LossScalerConfig{1024.0f, 0}), ConfigError);
  EXPECT_NO_THROW(LossScaler(LossScalerConfig{0.125f, 1}));
  std::vector<float> x(100000, 1.0f);
  EXPECT_TRUE(LossScaler::all_finite(x.data(), x.size()));
  x[77777] = NAN;
  EXPECT_FALSE(LossScaler::all_finite(x.data(), x.size()));
}

ModelConfig small(Family f) { return test::tiny_family(f); }

struct StepData {
  std::vector<int32_t> tokens, targets;
  Batch batch;
  explicit StepData(int V, int B = 4, int T = 12) : tokens(B * T), targets(B * T) {
    std::mt19937_64 rng(3);
    std::uniform_int_distribution<int32_t> d(0, V - 1);
    for (auto& x : tokens) x = d(rng);
    for (size_t i = 0; i < tokens.size(); ++i) targets[i] = tokens[(i + 1) % tokens.size()];
    batch.tokens = tokens.data();
    batch.targets = targets.data();
    batch.B = B;
    batch.T = T;
  }
};

// Without overflow a power-of-two scale changes nothing: same parameters, bit for bit.
TEST(LossScaler, ScaledStepsEqualUnscaledBitForBit) {
  for (Family f : {Family::gpt2, Family::llama}) {
    const ModelConfig c = small(f);
    const StepData r(c.vocab_size);
    Model a(c), b(c);
    a.init_weights(5);
    b.init_weights(5);
    AdamW oa(a.layout(), AdamWConfig{}), ob(b.layout(), AdamWConfig{});
    LossScaler sc;
    for (int step = 0; step < 4; ++step) {
      const float clip = step % 2 ? 1e-3f : 1.0f;  // odd steps clip hard: the 1/scale fold is exact there too
      const StepStats sa = train_step(a, oa, std::span<const Batch>(&r.batch, 1), 1e-2f, clip);
      const StepStats sb = train_step(b, ob, std::span<const Batch>(&r.batch, 1), 1e-2f, clip, sc);
      EXPECT_FALSE(sb.skipped);
      EXPECT_EQ(sb.loss_scale, 65536.0f);
      EXPECT_EQ(sa.loss, sb.loss);
      EXPECT_EQ(sa.grad_norm, sb.grad_norm);
    }
    EXPECT_EQ(std::memcmp(a.params(), b.params(), a.flat_size() * sizeof(float)), 0) << family_name(f);
  }
}

// A scale so large the gradients overflow: the scaler skips (optimizer untouched),
// halves until they fit, then training proceeds and the loss falls.
TEST(LossScaler, RecoversFromOverflow) {
  const ModelConfig c = small(Family::llama);
  StepData r(c.vocab_size);
  for (size_t i = 1; i < r.targets.size(); ++i) r.targets[i] = kIgnoreIndex;  // one target: dloss = scale
  Model m(c);
  m.init_weights(9);
  AdamW opt(m.layout(), AdamWConfig{});
  LossScaler sc(LossScalerConfig{std::ldexp(1.0f, 127), 1000});
  const std::vector<float> p0(m.params(), m.params() + m.flat_size());
  StepStats st = train_step(m, opt, std::span<const Batch>(&r.batch, 1), 1e-2f, 1.0f, sc);
  EXPECT_TRUE(st.skipped);
  EXPECT_EQ(opt.t(), 0);
  EXPECT_EQ(std::memcmp(p0.data(), m.params(), p0.size() * sizeof(float)), 0);
  EXPECT_EQ(sc.scale(), std::ldexp(1.0f, 126));
  double first = 0, last = 0;
  int applied = 0;
  for (int i = 0; i < 200 && applied < 30; ++i) {
    st = train_step(m, opt, std::span<const Batch>(&r.batch, 1), 1e-2f, 1.0f, sc);
    if (!st.skipped) {
      if (applied == 0) first = st.loss;
      last = st.loss;
      ++applied;
      EXPECT_TRUE(std::isfinite(st.grad_norm));
    }
  }
  EXPECT_EQ(applied, 30);
  EXPECT_GE(sc.skipped(), 1);
  EXPECT_LT(sc.scale(), std::ldexp(1.0f, 127));
  EXPECT_EQ(opt.t(), 30);  // skipped steps never reached AdamW
  EXPECT_LT(last, first);
}

}  // namespace
