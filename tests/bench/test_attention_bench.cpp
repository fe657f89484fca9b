// `teddy bench attention`'s library side: option checks, the plain-size cap, and
// that the reported peak counts the buffers a run really holds.
#include <gtest/gtest.h>

#include "bench/attention_bench.h"
#include "teddy/core/error.h"

namespace {

teddy::AttentionBenchOptions tiny() {
  teddy::AttentionBenchOptions o;
  o.seqs = {70};
  o.heads = 4;
  o.kv_heads = 2;
  o.head_dim = 16;
  o.warmup = 0;
  o.reps = 1;
  return o;
}

TEST(AttentionBench, RunsBothKernelsAndCountsTheirMemory) {
  const auto o = tiny();
  int calls = 0;
  const auto results = teddy::run_attention_bench(o, [&](const teddy::AttentionBenchResult&) { ++calls; });
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(calls, 2);
  const size_t T = 70, io = T * (4 + 2 * 2) * 16 * 2 + T * 4 * 16 * 2 + T * 4;  // qkv, dqkv, out, dout, lse
  for (const auto& r : results) {
    SCOPED_TRACE(r.impl);
    EXPECT_FALSE(r.skipped);
    EXPECT_EQ(r.seq, 70);
    EXPECT_GT(r.ms_fwd_bwd, 0.0);
    EXPECT_GT(r.gflops, 0.0);
    EXPECT_GT(r.peak_bytes, io * sizeof(float));  // plus the kernel's own working memory
  }
  EXPECT_EQ(results[0].impl, "flash");
  EXPECT_EQ(results[1].impl, "plain");
  // plain holds P (B,NH,T,T) and one (T,T) scratch on top of the same buffers.
  EXPECT_GE(results[1].peak_bytes, io * sizeof(float) + (4 * T * T + T * T) * sizeof(float));
  EXPECT_EQ(results[1].peak_bytes, teddy::attention_plain_bytes(1, 70, 4, 2, 16));
}

TEST(AttentionBench, SkipsPlainAboveTheCap) {
  auto o = tiny();
  o.plain_max_bytes = 1000;
  const auto results = teddy::run_attention_bench(o);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].skipped);
  EXPECT_TRUE(results[1].skipped);
  EXPECT_EQ(results[1].needed_bytes, teddy::attention_plain_bytes(1, 70, 4, 2, 16));
}

TEST(AttentionBench, RejectsBadOptions) {
  auto o = tiny();
  o.kv_heads = 3;  // does not divide 4 heads
  EXPECT_THROW(teddy::run_attention_bench(o), teddy::ConfigError);
  o = tiny();
  o.seqs = {};
  EXPECT_THROW(teddy::run_attention_bench(o), teddy::ConfigError);
  o = tiny();
  o.impls = {"fast"};
  EXPECT_THROW(teddy::run_attention_bench(o), teddy::ConfigError);
  o = tiny();
  o.reps = 0;
  EXPECT_THROW(teddy::run_attention_bench(o), teddy::ConfigError);
}

TEST(AttentionBench, FlopCountIsFlashAttention2s) {
  // 3.5 * 4 * B * NH * T^2 * HS / 2 (causal).
  EXPECT_DOUBLE_EQ(teddy::attention_flops(2, 1024, 12, 64), 3.5 * 4 * 2 * 12 * 1024.0 * 1024 * 64 / 2);
}

}  // namespace
