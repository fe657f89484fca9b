// AdamW, grad_norm and train_step use the context they are given (the model's): a
// counting copy of the cpu table sees every adamw_update and sum_squares call, and a
// context's thread count is what the kernels run with.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/tiny_models.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/context.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/grad_clip.h"
#include "teddy/train/train_step.h"

namespace {

using namespace teddy;
using namespace teddy::test;

std::atomic<int> adamw_calls{0}, sum_squares_calls{0}, threads_seen{0};

void counting_adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, float lr, float beta1,
                           float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  ++adamw_calls;
  kernels::backend("cpu").adamw_update(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
}

double counting_sum_squares(const float* x, int64_t n) {
  ++sum_squares_calls;
  threads_seen = omp_get_max_threads();
  return kernels::backend("cpu").sum_squares(x, n);
}

TEST(Context, OptimizerClippingAndTrainStepUseTheModelsBackend) {
  kernels::Backend counting = kernels::backend("cpu");
  counting.name = "counting";
  counting.adamw_update = &counting_adamw_update;
  counting.sum_squares = &counting_sum_squares;
  const ModelConfig cfg = tiny_gpt2();
  Model m(cfg, Context{.backend = &counting, .threads = 1});
  fill_random_params(m, 1);
  AdamW opt(m.layout(), AdamWConfig{}, m.context());
  EXPECT_EQ(opt.context().backend, &counting);

  const std::vector<int32_t> tokens = randint(16, 0, cfg.vocab_size, 2), targets = randint(16, 0, cfg.vocab_size, 3);
  Batch b;
  b.tokens = tokens.data();
  b.targets = targets.data();
  b.B = 2;
  b.T = 8;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  adamw_calls = sum_squares_calls = 0;
  threads_seen = 0;
  train_step(m, opt, std::span<const Batch>(&b, 1), 1e-3f, 1.0f);
  EXPECT_EQ(sum_squares_calls, 1);  // the gradient norm
  EXPECT_GT(adamw_calls, 0);        // one call per run of tensors with one decay setting
  EXPECT_EQ(threads_seen, 1);       // the context's thread count, not the caller's 2
  EXPECT_EQ(omp_get_max_threads(), 2);  // restored
  omp_set_num_threads(saved);

  sum_squares_calls = 0;
  grad_norm(m.grads(), m.flat_size());  // no context: the default (cpu) table
  EXPECT_EQ(sum_squares_calls, 0);
  grad_norm(m.grads(), m.flat_size(), m.context());
  EXPECT_EQ(sum_squares_calls, 1);
}

}  // namespace
