// `teddy bench train`'s library side: the ceiling is sampled around every timed step,
// the MFU is a median of per-step ratios, memory fields are filled, and bad options
// are refused before anything is measured.
#include <gtest/gtest.h>

#include "bench/train_bench.h"
#include "teddy/core/error.h"

namespace {

teddy::TrainBenchOptions tiny(int warmup, int steps) {
  teddy::TrainBenchOptions o;
  o.workloads = {{"custom", "gpt2-tiny", 1, 16}};
  o.threads = 2;
  o.warmup = warmup;
  o.steps = steps;
  o.profile = false;
  o.sgemm_seconds = 0.01;  // minimum calls per shape: keeps the test short
  return o;
}

TEST(TrainBench, SamplesTheCeilingAroundEveryTimedStep) {
  for (const auto& [warmup, steps] : {std::pair{1, 1}, std::pair{0, 1}}) {
    SCOPED_TRACE(::testing::Message() << "warmup " << warmup << " steps " << steps);
    const auto results = teddy::run_train_bench(tiny(warmup, steps));
    ASSERT_EQ(results.size(), 1u);
    const auto& r = results[0];
    // One sample before each timed step (none before the run's very first step: the
    // probe is allocated after it, once the peak RSS is read) and one after the last.
    EXPECT_EQ(r.sgemm_samples, warmup > 0 ? steps + 1 : steps);
    EXPECT_GT(r.sgemm_min, 0.0);
    EXPECT_LE(r.sgemm_min, r.sgemm_gflops);
    EXPECT_LE(r.sgemm_gflops, r.sgemm_max);
    EXPECT_GE(r.sgemm_before, r.sgemm_min);
    EXPECT_LE(r.sgemm_after, r.sgemm_max);
    EXPECT_GT(r.ms_per_step, 0.0);
    EXPECT_LE(r.ms_min, r.ms_per_step);
    EXPECT_LE(r.ms_per_step, r.ms_max);
    // Per-step MFU uses each step's own ceiling, so the median lies within what the
    // slowest/fastest step over the highest/lowest sample could give.
    // (1 -+ 1e-9): the same quotient in another order of double operations, a few ulps.
    const double flops_per_step = r.flops_per_token * 16;
    EXPECT_GT(r.mfu, 0.0);
    EXPECT_GE(r.mfu, flops_per_step / (r.ms_max * 1e-3) / 1e9 / r.sgemm_max * (1 - 1e-9));
    EXPECT_LE(r.mfu, flops_per_step / (r.ms_min * 1e-3) / 1e9 / r.sgemm_min * (1 + 1e-9));
    EXPECT_GT(r.mfu_five_shape, 0.0);
    EXPECT_GT(r.sgemm_five_shape, 0.0);
    EXPECT_GT(r.peak_rss_bytes, r.param_bytes + r.grad_bytes + r.optimizer_bytes);
    EXPECT_GT(r.activation_bytes, 0u);
  }
}

TEST(TrainBench, RejectsBadOptions) {
  auto o = tiny(0, 0);
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
  o = tiny(-1, 1);
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
  o = tiny(0, 1);
  o.threads = 0;
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
  o = tiny(0, 1);
  o.recompute = "sometimes";
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
  o = tiny(0, 1);
  o.precision = "fp8";
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
  o = tiny(0, 1);
  o.workloads = {{"custom", "gpt2-tiny", 1, 100000}};  // beyond max_seq_len
  EXPECT_THROW(teddy::run_train_bench(o), teddy::ConfigError);
}

}  // namespace
