// Parameter layout: order, shapes, 64-byte alignment, no overlap, decay groups.
#include <gtest/gtest.h>

#include <string>

#include "teddy/core/error.h"
#include "teddy/model/model.h"

namespace teddy {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_layout_invariants(const ModelConfig& cfg) {
  const ParamLayout layout = make_param_layout(cfg);
  size_t end = 0, sum = 0;
  int last_layer = -1;
  for (const ParamInfo& p : layout.params) {
    SCOPED_TRACE(p.name);
    EXPECT_EQ(p.offset % 16, 0u) << "offset not 64-byte aligned";
    EXPECT_GE(p.offset, end) << "overlaps the previous tensor";
    EXPECT_LT(p.offset - end, 16u) << "more padding than alignment needs";
    size_t numel = 1;
    for (int64_t d : p.shape) numel *= static_cast<size_t>(d);
    EXPECT_EQ(numel, p.numel);
    end = p.offset + p.numel;
    sum += p.numel;
    // Norms and biases are 1-D and do not decay; every matrix does.
    EXPECT_EQ(p.decay, p.shape.size() == 2);
    EXPECT_EQ(p.decay, !(ends_with(p.name, ".bias") || p.name.find("norm") != std::string::npos));
    // Blocks are contiguous and in order.
    if (p.layer >= 0) {
      EXPECT_GE(p.layer, last_layer);
      EXPECT_EQ(p.name.rfind("layers." + std::to_string(p.layer) + ".", 0), 0u);
      last_layer = p.layer;
    } else if (last_layer >= 0) {
      EXPECT_TRUE(p.name == "final_norm.weight" || p.name == "final_norm.bias" || p.name == "lm_head.weight");
    }
    EXPECT_EQ(&layout.find(p.name), &p);
  }
  EXPECT_GE(layout.total, end);
  EXPECT_EQ(layout.total % 16, 0u);
  EXPECT_EQ(layout.count(), sum);
  EXPECT_THROW(layout.find("no.such.tensor"), Error);
}

TEST(ParamLayout, InvariantsEveryPreset) {
  for (const std::string& name : ModelConfig::preset_names()) {
    SCOPED_TRACE(name);
    check_layout_invariants(ModelConfig::preset(name));
  }
  ModelConfig odd = ModelConfig::preset("gpt2-tiny");
  odd.vocab_size = 500;  // padded to 512: first tensor 512*32, then odd-sized biases
  odd.d_model = 30;
  odd.d_ff = 70;
  odd.padded_vocab_size = ModelConfig::pad_vocab(500);
  check_layout_invariants(odd);
}

TEST(ParamLayout, Gpt2NamesAndShapes) {
  const ModelConfig c = ModelConfig::preset("gpt2-tiny");  // C 32, 2 layers, T 64, vocab 512
  const ParamLayout l = make_param_layout(c);
  const std::vector<std::string> want = {
      "tok_emb.weight", "pos_emb.weight",
      "layers.0.norm1.weight", "layers.0.norm1.bias", "layers.0.attn.qkv.weight", "layers.0.attn.qkv.bias",
      "layers.0.attn.proj.weight", "layers.0.attn.proj.bias", "layers.0.norm2.weight", "layers.0.norm2.bias",
      "layers.0.mlp.up.weight", "layers.0.mlp.up.bias", "layers.0.mlp.down.weight", "layers.0.mlp.down.bias"};
  ASSERT_EQ(l.params.size(), 2 + 12 * 2 + 2u);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(l.params[i].name, want[i]);
  EXPECT_EQ(l.params.back().name, "final_norm.bias");
  EXPECT_EQ(l.find("tok_emb.weight").shape, (std::vector<int64_t>{512, 32}));
  EXPECT_EQ(l.find("pos_emb.weight").shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(l.find("layers.1.attn.qkv.weight").shape, (std::vector<int64_t>{96, 32}));
  EXPECT_EQ(l.find("layers.1.mlp.up.weight").shape, (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(l.find("layers.1.mlp.down.weight").shape, (std::vector<int64_t>{32, 128}));
  EXPECT_EQ(l.find("layers.1.attn.proj.weight").layer, 1);
  EXPECT_EQ(l.find("tok_emb.weight").layer, -1);
  EXPECT_TRUE(l.find("tok_emb.weight").decay);
}

TEST(ParamLayout, LlamaNamesAndShapes) {
  const ModelConfig c = ModelConfig::preset("llama-tiny");  // C 32, 2 heads, 1 kv head, d_ff 88
  const ParamLayout l = make_param_layout(c);
  ASSERT_EQ(l.params.size(), 1 + 6 * 2 + 2u);  // tok_emb, 6 per block, final norm, lm_head
  EXPECT_EQ(l.params[0].name, "tok_emb.weight");
  EXPECT_EQ(l.params[1].name, "layers.0.norm1.weight");
  EXPECT_EQ(l.params.back().name, "lm_head.weight");
  EXPECT_EQ(l.find("layers.0.attn.qkv.weight").shape, (std::vector<int64_t>{(2 + 2 * 1) * 16, 32}));
  EXPECT_EQ(l.find("layers.0.mlp.up.weight").shape, (std::vector<int64_t>{2 * 88, 32}));
  EXPECT_EQ(l.find("layers.0.mlp.down.weight").shape, (std::vector<int64_t>{32, 88}));
  EXPECT_EQ(l.find("lm_head.weight").shape, (std::vector<int64_t>{512, 32}));
  EXPECT_TRUE(l.find("lm_head.weight").decay);
  EXPECT_THROW(l.find("pos_emb.weight"), Error);
  EXPECT_THROW(l.find("layers.0.norm1.bias"), Error);
  // Tied LLaMA: no lm_head.
  ModelConfig tied = c;
  tied.tie_embeddings = true;
  EXPECT_THROW(make_param_layout(tied).find("lm_head.weight"), Error);
}

TEST(ParamLayout, ModelViewsMatchLayout) {
  Model m(ModelConfig::preset("llama-tiny"));
  EXPECT_EQ(m.flat_size(), m.layout().total);
  EXPECT_EQ(m.param_bytes(), m.layout().total * sizeof(float));
  EXPECT_EQ(m.grad_bytes(), m.layout().total * sizeof(float));
  const ParamInfo& p = m.layout().find("layers.1.mlp.down.weight");
  EXPECT_EQ(m.param("layers.1.mlp.down.weight"), m.params() + p.offset);
  EXPECT_EQ(m.grad("layers.1.mlp.down.weight"), m.grads() + p.offset);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.params()) % 64, 0u);
}

}  // namespace
}  // namespace teddy
