// The plan's parameter count is computed from the config alone; the engine's
// make_param_layout is written separately. They must agree for every preset.
#include <gtest/gtest.h>

#include "teddy/core/error.h"
#include "teddy/model/config.h"
#include "teddy/model/model.h"
#include "teddy/plan/params.h"

using namespace teddy;
using namespace teddy::plan;

TEST(PlanParams, EqualsEngineAllocationForEveryPreset) {
  for (const std::string& name : ModelConfig::preset_names()) {
    SCOPED_TRACE(name);
    const ModelConfig cfg = ModelConfig::preset(name);
    const ParamLayout layout = make_param_layout(cfg);
    const ParamCount c = count_params(cfg);
    EXPECT_EQ(c.total, static_cast<int64_t>(layout.count()));
    EXPECT_EQ(c.allocated_floats, static_cast<int64_t>(layout.total));
    EXPECT_EQ(param_tensors(cfg).size(), layout.params.size());
    // Per-layer: the engine's block-0 tensors sum to the plan's per-block count.
    int64_t block0 = 0;
    for (const ParamInfo& p : layout.params)
      if (p.layer == 0) block0 += static_cast<int64_t>(p.numel);
    EXPECT_EQ(c.per_layer, block0);
  }
}

TEST(PlanParams, KnownSizes) {
  // GPT-2 124M with llm.c's padded vocab 50304: 124,475,904 (llm.c prints this);
  // with the real 50257 rows: 124,439,808 (HF's count).
  const ParamCount g = count_params(ModelConfig::preset("gpt2-124M"));
  EXPECT_EQ(g.total, 124475904);
  EXPECT_EQ(g.total_real_vocab, 124439808);
  EXPECT_EQ(g.token_embedding, 50304 * 768);
  EXPECT_EQ(g.position_embedding, 1024 * 768);
  EXPECT_EQ(g.lm_head, 0);  // tied
  EXPECT_EQ(g.non_embedding, g.total - 50304 * 768 - 1024 * 768);
  EXPECT_EQ(g.matmul, g.non_embedding + 50304 * 768);  // the tied head is still multiplied
  // Llama-3.2-1B: 1,235,814,400 parameters (tied embeddings).
  const ParamCount l = count_params(ModelConfig::preset("llama-1B"));
  EXPECT_EQ(l.total, 1235814400);
  EXPECT_EQ(l.matmul, l.total);
}

TEST(PlanParams, TinyByHand) {
  // gpt2-tiny: L=2, C=32, F=128, Vp=512, T=64.
  const ParamCount g = count_params(ModelConfig::preset("gpt2-tiny"));
  const int64_t block = 2 * 32 + (96 * 32 + 96) + (32 * 32 + 32) + 2 * 32 + (128 * 32 + 128) + (32 * 128 + 32);
  EXPECT_EQ(g.per_layer, block);
  EXPECT_EQ(g.total, 512 * 32 + 64 * 32 + 2 * block + 2 * 32);
  // llama-tiny: L=2, C=32, NH=2, NKV=1 (HS 16), untied head, no biases.
  const ModelConfig lc = ModelConfig::preset("llama-tiny");
  const int64_t F = lc.d_ff;
  const int64_t lblock = 32 + (2 + 2 * 1) * 16 * 32 + 32 * 32 + 32 + 2 * F * 32 + 32 * F;
  const ParamCount l = count_params(lc);
  EXPECT_EQ(l.per_layer, lblock);
  EXPECT_EQ(l.total, 512 * 32 + 2 * lblock + 32 + 512 * 32);
  EXPECT_EQ(l.lm_head, 512 * 32);
  EXPECT_EQ(l.non_embedding, l.total - 512 * 32);  // the untied head is not an embedding
}

TEST(PlanParams, RealVocabAndLora) {
  ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  cfg.vocab_size = 500;  // padded stays 512
  const ParamCount c = count_params(cfg);
  EXPECT_EQ(c.total - c.total_real_vocab, 12 * 32);
  // LoRA rank 4 on GPT-2's c_attn (32->96), c_proj (32->32), c_fc (32->128), mlp c_proj (128->32).
  const ParamCount lora = count_params(cfg, LoraSpec{4});
  EXPECT_EQ(lora.lora, 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)));
  EXPECT_EQ(lora.trainable, lora.lora);
  EXPECT_EQ(c.trainable, c.total);
  EXPECT_THROW(count_params(cfg, LoraSpec{-1}), ConfigError);
}

TEST(PlanParams, InvalidConfigIsRejected) {
  ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  cfg.n_head = 3;  // does not divide 32
  EXPECT_THROW(count_params(cfg), ConfigError);
  EXPECT_THROW(ModelConfig::preset("gpt2-7T"), ConfigError);
}
