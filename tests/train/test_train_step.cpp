#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <random>
#include <vector>

#include "model/tiny_models.h"
#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/adamw.h"
#include "teddy/train/grad_clip.h"
#include "teddy/train/train_step.h"

using namespace teddy;

namespace teddy {
// Readable parameter names in gtest / ctest output.
void PrintTo(Family f, std::ostream* os) { *os << family_name(f); }
}  // namespace teddy

namespace {

ModelConfig small_config(Family f) { return test::tiny_family(f); }

double rel(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// B=4 rows of T=9; rows 0-1 have many ignored targets, rows 2-3 few.
struct Data {
  static constexpr int B = 4, T = 9;
  std::vector<int32_t> tokens, targets;
  explicit Data(int V) : tokens(B * T), targets(B * T) {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int32_t> d(0, V - 1);
    for (auto& x : tokens) x = d(rng);
    for (auto& x : targets) x = d(rng);
    for (int i : {0, 2, 3, 5, 7, 9, 10, 13}) targets[i] = kIgnoreIndex;  // rows 0-1: 8 ignored
    targets[30] = kIgnoreIndex;                                         // rows 2-3: 1 ignored
  }
  Batch rows(int first, int n) const {
    Batch b;
    b.tokens = tokens.data() + first * T;
    b.targets = targets.data() + first * T;
    b.B = n;
    b.T = T;
    return b;
  }
};

class TrainStep : public ::testing::TestWithParam<Family> {};

}  // namespace

// Two micro-batches with different numbers of real targets must produce the
// gradient and update of the single big batch (dloss = 1/total over the step).
TEST_P(TrainStep, AccumulationEqualsBigBatch) {
  const ModelConfig cfg = small_config(GetParam());
  const Data data(cfg.vocab_size);
  Model big(cfg), acc(cfg);
  big.init_weights(5);
  acc.init_weights(5);
  AdamW opt_big(big.layout(), AdamWConfig{}), opt_acc(acc.layout(), AdamWConfig{});
  const Batch whole = data.rows(0, 4);
  const std::vector<Batch> halves{data.rows(0, 2), data.rows(2, 2)};
  ASSERT_NE(count_targets(halves[0]), count_targets(halves[1]));
  const size_t n = big.flat_size();
  for (int step = 0; step < 3; ++step) {
    const StepStats a = train_step(big, opt_big, std::span(&whole, 1), 1e-2f, 1.0f);
    const StepStats b = train_step(acc, opt_acc, halves, 1e-2f, 1.0f);
    EXPECT_EQ(a.tokens, 4 * 9 - 9);
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_NEAR(b.loss, a.loss, 1e-6 * a.loss) << "step " << step;
    EXPECT_NEAR(b.grad_norm, a.grad_norm, 1e-5 * a.grad_norm) << "step " << step;
    EXPECT_LE(rel(acc.grads(), big.grads(), n), 1e-5) << "gradient at step " << step;
    EXPECT_LE(rel(acc.params(), big.params(), n), 1e-6) << "parameters after step " << step;
    EXPECT_EQ(a.lr, 1e-2f);
    // The reported norm is the unclipped gradient's (train_step leaves grads unscaled).
    EXPECT_NEAR(a.grad_norm, grad_norm(big.grads(), n), 1e-9 * a.grad_norm);
  }
  EXPECT_EQ(opt_acc.t(), 3);
}

// The bug this guards against: averaging each micro-batch's own mean loss weights
// the targets of the sparser micro-batch more; that gradient must differ.
TEST_P(TrainStep, PerMicroBatchMeanIsNotTheBigBatchGradient) {
  const ModelConfig cfg = small_config(GetParam());
  const Data data(cfg.vocab_size);
  Model m(cfg);
  m.init_weights(5);
  const size_t n = m.flat_size();
  m.zero_grad();
  const LossSum whole = m.forward_backward(data.rows(0, 4), 1.0f / 27.0f);
  EXPECT_EQ(whole.count, 27);
  const std::vector<float> right(m.grads(), m.grads() + n);
  m.zero_grad();
  for (const Batch& b : {data.rows(0, 2), data.rows(2, 2)})
    m.forward_backward(b, 0.5f / static_cast<float>(count_targets(b)));
  EXPECT_GT(rel(m.grads(), right.data(), n), 1e-3);
}

TEST_P(TrainStep, ClippingScalesTheUpdate) {
  // With one step from zero moments Adam's update is ~sign(g)*lr, nearly blind to
  // the gradient's scale; it is not blind to eps. Use a large eps so the clip shows.
  const ModelConfig cfg = small_config(GetParam());
  const Data data(cfg.vocab_size);
  Model a(cfg), b(cfg);
  a.init_weights(3);
  b.init_weights(3);
  const AdamWConfig oc{.eps = 1.0f, .weight_decay = 0.0f};
  AdamW oa(a.layout(), oc), ob(b.layout(), oc);
  const Batch whole = data.rows(0, 4);
  const std::vector<float> p0(a.params(), a.params() + a.flat_size());
  const StepStats sa = train_step(a, oa, std::span(&whole, 1), 1e-2f, 0.0f);  // no clipping
  const StepStats sb = train_step(b, ob, std::span(&whole, 1), 1e-2f, static_cast<float>(sa.grad_norm / 4));
  EXPECT_DOUBLE_EQ(sa.grad_norm, sb.grad_norm);
  // With eps = 1 >> sqrt(v), the update is ~ lr * g * scale: clipping to 1/4 quarters it.
  double da = 0, db = 0;
  for (size_t i = 0; i < p0.size(); ++i) {
    da += std::fabs(a.params()[i] - p0[i]);
    db += std::fabs(b.params()[i] - p0[i]);
  }
  EXPECT_NEAR(db / da, 0.25, 0.01);
}

TEST_P(TrainStep, RejectsBadInput) {
  const ModelConfig cfg = small_config(GetParam());
  Model m(cfg);
  m.init_weights(1);
  AdamW opt(m.layout(), AdamWConfig{});
  EXPECT_THROW(train_step(m, opt, {}, 1e-3f, 1.0f), Error);
  const Data data(cfg.vocab_size);
  Batch no_targets = data.rows(0, 1);
  no_targets.targets = nullptr;
  EXPECT_THROW(train_step(m, opt, std::span(&no_targets, 1), 1e-3f, 1.0f), Error);
  ModelConfig other = cfg;
  other.n_layer = 1;
  AdamW wrong(make_param_layout(other), AdamWConfig{});
  const Batch b = data.rows(0, 1);
  EXPECT_THROW(train_step(m, wrong, std::span(&b, 1), 1e-3f, 1.0f), Error);
}

INSTANTIATE_TEST_SUITE_P(Families, TrainStep, ::testing::Values(Family::gpt2, Family::llama),
                         [](const auto& info) { return std::string(family_name(info.param)); });
