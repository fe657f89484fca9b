// FLOPs per token by hand for a tiny config, and the rule-of-thumb relations.
#include <gtest/gtest.h>

#include "teddy/core/error.h"
#include "teddy/plan/device.h"
#include "teddy/plan/flops.h"
#include "teddy/plan/params.h"

using namespace teddy;
using namespace teddy::plan;

TEST(PlanFlops, TinyGpt2ByHand) {
  // gpt2-tiny: L=2, C=32, NH=2, F=128, Vp=512; T=64.
  const FlopsPerToken f = flops_per_token(ModelConfig::preset("gpt2-tiny"), 64);
  const ForwardFlops& fw = f.forward;
  EXPECT_DOUBLE_EQ(fw.qkv, 2.0 * 32 * 96);            // 6144
  EXPECT_DOUBLE_EQ(fw.attn_dense, 4.0 * 64 * 32);     // QK^T + PV over 64 keys: 8192
  EXPECT_DOUBLE_EQ(fw.attn_causal, 4.0 * 32.5 * 32);  // (T+1)/2 keys on average: 4160
  EXPECT_DOUBLE_EQ(fw.proj, 2.0 * 32 * 32);           // 2048
  EXPECT_DOUBLE_EQ(fw.mlp, 2.0 * 32 * 128 * 2);       // up + down: 16384
  EXPECT_DOUBLE_EQ(fw.lm_head, 2.0 * 32 * 512);       // 32768
  EXPECT_DOUBLE_EQ(fw.dense(), 98304);                // 2 * 32768 + 32768
  EXPECT_DOUBLE_EQ(f.exact_dense(), 294912);
  EXPECT_DOUBLE_EQ(f.exact_causal(), 3.0 * (2 * (6144 + 4160 + 2048 + 16384) + 32768));  // 270720
  // 6N with N = blocks (2 x 12704) + final norm (64) + head matrix (16384) = 41856.
  EXPECT_DOUBLE_EQ(f.six_n, 6.0 * 41856);
  EXPECT_DOUBLE_EQ(f.attention_dense, 12.0 * 2 * 64 * 32);
  EXPECT_DOUBLE_EQ(f.attention_causal, 6.0 * 2 * 65 * 32);
  EXPECT_DOUBLE_EQ(f.approx(), 251136 + 49152);
}

TEST(PlanFlops, SixNAgreesWithExactCountUpToNormsAndBiases) {
  for (const char* name : {"gpt2-124M", "llama-1B", "llama-134M"}) {
    SCOPED_TRACE(name);
    const ModelConfig cfg = ModelConfig::preset(name);
    const FlopsPerToken f = flops_per_token(cfg, 1024);
    // 6N counts norm weights and biases as if multiplied: under 0.2% for real models.
    EXPECT_NEAR(f.approx() / f.exact_dense(), 1.0, 2e-3);
    EXPECT_NEAR(f.approx_causal() / f.exact_causal(), 1.0, 2e-3);
    EXPECT_LT(f.exact_causal(), f.exact_dense());
    EXPECT_DOUBLE_EQ(f.six_n, 6.0 * static_cast<double>(count_params(cfg).matmul));
  }
}

TEST(PlanFlops, GqaShrinksOnlyQkv) {
  const ModelConfig cfg = ModelConfig::preset("llama-1B");  // 32 heads, 8 kv, HS 64
  const FlopsPerToken f = flops_per_token(cfg, 2048);
  EXPECT_DOUBLE_EQ(f.forward.qkv, 2.0 * 2048 * (32 + 16) * 64);
  EXPECT_DOUBLE_EQ(f.forward.mlp, 2.0 * 2048 * 2 * 8192 + 2.0 * 8192 * 2048);  // SwiGLU gate + up, down
}

TEST(PlanFlops, RecomputeAddsHardwareFlops) {
  const ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  const FlopsPerToken f = flops_per_token(cfg, 64);
  EXPECT_EQ(recompute_flops_per_token(cfg, 64, Recompute::none), 0);
  // The blocks' forward minus the MLP down projection (the block output is kept).
  EXPECT_DOUBLE_EQ(recompute_flops_per_token(cfg, 64, Recompute::block),
                   f.forward.causal() - f.forward.lm_head - cfg.n_layer * 2.0 * cfg.d_ff * cfg.d_model);
  EXPECT_LT(recompute_flops_per_token(cfg, 64, Recompute::attention),
            recompute_flops_per_token(cfg, 64, Recompute::block));
  EXPECT_THROW(recompute_from_name("sometimes"), ConfigError);
}

TEST(PlanFlops, TrainingTime) {
  // 1e21 FLOPs at 989 TFLOP/s and 40% MFU: 1e21 / 395.6e12 s.
  const TrainingTime t = training_time(1e10, 1e11, 989e12, 0.4, 8);
  EXPECT_DOUBLE_EQ(t.flops, 1e21);
  // Double arithmetic, a few roundings on values ~700 (hours) and ~3e6 (seconds): ~1e-13
  // and ~1e-9 absolute at most; the tolerances are 1e4 and 1e3 times that.
  EXPECT_NEAR(t.gpu_hours, 1e21 / (989e12 * 0.4) / 3600, 1e-9);
  EXPECT_NEAR(t.wall_seconds * 8, t.device_seconds, 1e-6);
  EXPECT_EQ(device_preset("h100").peak_flops, 989e12);
}

TEST(PlanFlops, BadInput) {
  const ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  EXPECT_THROW(flops_per_token(cfg, 0), ConfigError);
  EXPECT_THROW(training_time(1e10, -5, 989e12, 0.4, 1), ConfigError);
  EXPECT_THROW(training_time(1e10, 1e11, 989e12, 1.5, 1), ConfigError);   // MFU > 1
  EXPECT_THROW(training_time(1e10, 1e11, 989e12, 0.0 / 0.0, 1), ConfigError);  // NaN
  EXPECT_THROW(training_time(1e10, 1e11, 0, 0.4, 1), ConfigError);        // cpu without a peak
  try {
    device_preset("tpu9");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("h100"), std::string::npos);  // lists the known devices
  }
}
