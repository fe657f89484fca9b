#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <ostream>
#include <random>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/tiny_models.h"
#include "train/adamw_exact.h"
#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/grad_clip.h"
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
//
// The two sides compute the same sums in a different order: OpenBLAS may block an
// 18-row GEMM differently from a 36-row one (by CPU: Haswell, Zen and SkylakeX
// kernels differ), and the gradients of the two halves are added in another order
// than one GEMM's K loop adds the 36 rows. So equality holds up to fp32 rounding of
// those reductions, and each step starts both sides from the same state (big's
// parameters and moments) so what is compared is one step's arithmetic, not a
// trajectory whose rounding differences compound.
//  - loss, gradient: relative to their size, within rtol_for(eps_f32, K) with K the
//    longest reduction in the step (the padded vocabulary, the MLP width or the
//    36 rows of a weight gradient, whichever is largest). The bug this guards
//    against (per-micro-batch means) is off by ~1e-2 here, see the test below.
//  - grad norm: | ||a|| - ||b|| | <= ||a - b||, so the gradient's bound carries over.
//  - parameters: AdamW is elementwise, so the parameter difference must be what
//    AdamW does to the two (clipped) gradients in exact arithmetic, computed here in
//    double from the shared pre-step state, plus each side's fp32 rounding of the
//    update (tests/train/adamw_exact.h). Near-zero gradients can turn m/sqrt(v) from -1
//    to +1 between the sides: that is AdamW's arithmetic, and the double model
//    predicts it exactly, whereas a relative bound on the parameters cannot hold.
TEST_P(TrainStep, AccumulationEqualsBigBatch) {
  const ModelConfig cfg = small_config(GetParam());
  const Data data(cfg.vocab_size);
  Model big(cfg), acc(cfg);
  big.init_weights(5);
  acc.init_weights(5);
  const AdamWConfig oc{};
  AdamW opt_big(big.layout(), oc), opt_acc(acc.layout(), oc);
  const Batch whole = data.rows(0, 4);
  const std::vector<Batch> halves{data.rows(0, 2), data.rows(2, 2)};
  ASSERT_NE(count_targets(halves[0]), count_targets(halves[1]));
  const size_t n = big.flat_size();
  const int64_t K = std::max({static_cast<int64_t>(cfg.padded_vocab_size), static_cast<int64_t>(cfg.d_ff),
                              static_cast<int64_t>(Data::B) * Data::T});
  const double tol = test::rtol_for(test::kEpsF32, K);
  std::vector<double> wd(n, 0.0);  // per-element weight decay (padding: none; it is zero and stays zero)
  for (const ParamInfo& p : big.layout().params)
    std::fill_n(wd.begin() + static_cast<std::ptrdiff_t>(p.offset), p.numel, p.decay ? oc.weight_decay : 0.0);
  const float lr = 1e-2f, max_norm = 1.0f;
  for (int step = 0; step < 3; ++step) {
    // Same state on both sides: big's parameters and moments.
    std::copy_n(big.params(), n, acc.params());
    opt_acc.set_state(opt_big.t(), opt_big.m(), opt_big.v());
    const std::vector<float> p0(big.params(), big.params() + n), m0(opt_big.m(), opt_big.m() + n),
        v0(opt_big.v(), opt_big.v() + n);
    const StepStats a = train_step(big, opt_big, std::span(&whole, 1), lr, max_norm);
    const StepStats b = train_step(acc, opt_acc, halves, lr, max_norm);
    EXPECT_EQ(a.tokens, 4 * 9 - 9);
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_NEAR(b.loss, a.loss, tol * a.loss) << "step " << step;
    const double grad_rel = rel(acc.grads(), big.grads(), n);
    EXPECT_LE(grad_rel, tol) << "gradient at step " << step;
    EXPECT_NEAR(b.grad_norm, a.grad_norm, tol * a.grad_norm) << "step " << step;
    EXPECT_EQ(a.lr, lr);
    // The reported norm is the unclipped gradient's (train_step leaves grads unscaled).
    EXPECT_NEAR(a.grad_norm, grad_norm(big.grads(), n), 1e-9 * a.grad_norm);

    // Parameters: the exact AdamW step of each side's own clipped gradient, each side
    // within its fp32 rounding of it (adamw_exact.h), so their difference within the sum.
    const test::AdamWStepConstants k(oc, opt_big.t());
    const double ca = clip_scale(a.grad_norm, max_norm), cb = clip_scale(b.grad_norm, max_norm);
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto ea = test::adamw_element_step(big.grads()[i] * ca, p0[i], m0[i], v0[i], oc, wd[i], lr, k);
      const auto eb = test::adamw_element_step(acc.grads()[i] * cb, p0[i], m0[i], v0[i], oc, wd[i], lr, k);
      const double got = double{acc.params()[i]} - double{big.params()[i]};
      const double err = std::fabs(got - (eb.p - ea.p)), bound = ea.ep + eb.ep;
      const double ratio = err == 0 ? 0 : err / bound;
      if (ratio > worst) worst = ratio, worst_i = i;
    }
    test::note_used("TrainStep accumulation: parameters vs AdamW's exact update", worst);
    EXPECT_LE(worst, 1.0) << "parameters after step " << step << ": element " << worst_i << " differs by "
                          << acc.params()[worst_i] - big.params()[worst_i] << " (" << worst
                          << "x the rounding bound around AdamW's exact update)";
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
