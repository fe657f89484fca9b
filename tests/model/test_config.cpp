// ModelConfig: every validation rule, presets, parameter counts.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "teddy/core/error.h"
#include "teddy/model/config.h"
#include "teddy/model/model.h"

namespace teddy {
namespace {

// Expects cfg.validate() to throw a ConfigError whose message starts with "<field>:"
// and mentions `rule`.
void expect_rejected(const ModelConfig& cfg, const std::string& field, const std::string& rule) {
  try {
    cfg.validate();
    ADD_FAILURE() << "accepted a config that breaks \"" << field << ": " << rule << "\"";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(field + ":", 0), 0u) << msg;
    EXPECT_NE(msg.find(rule), std::string::npos) << msg;
  }
}

ModelConfig with(const char* preset, const std::function<void(ModelConfig&)>& edit) {
  ModelConfig c = ModelConfig::preset(preset);
  edit(c);
  return c;
}

TEST(Config, EveryPresetValidates) {
  for (const std::string& name : ModelConfig::preset_names()) {
    SCOPED_TRACE(name);
    const ModelConfig c = ModelConfig::preset(name);
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(c.padded_vocab_size, ModelConfig::pad_vocab(c.vocab_size));
    EXPECT_EQ(c.padded_vocab_size % 64, 0);
  }
}

TEST(Config, UnknownPresetListsKnownNames) {
  try {
    ModelConfig::preset("gpt5");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("gpt2-124M"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-tiny"), std::string::npos) << e.what();
  }
}

TEST(Config, PresetShapes) {
  const ModelConfig g = ModelConfig::preset("gpt2-124M");
  EXPECT_EQ(g.family, Family::gpt2);
  EXPECT_EQ(g.n_layer, 12);
  EXPECT_EQ(g.n_head, 12);
  EXPECT_EQ(g.d_model, 768);
  EXPECT_EQ(g.vocab_size, 50257);
  EXPECT_EQ(g.padded_vocab_size, 50304);
  EXPECT_EQ(g.max_seq_len, 1024);
  EXPECT_TRUE(g.tie_embeddings);
  EXPECT_TRUE(g.bias);
  const ModelConfig d6 = ModelConfig::preset("gpt2-d6");
  EXPECT_EQ(d6.n_layer, 6);
  EXPECT_EQ(d6.n_head, 6);
  EXPECT_EQ(d6.d_model, 384);
  EXPECT_EQ(d6.padded_vocab_size, 50304);
  const ModelConfig l = ModelConfig::preset("llama-134M");
  EXPECT_EQ(l.family, Family::llama);
  EXPECT_EQ(l.n_kv_head, 4);
  EXPECT_EQ(l.d_ff, 2048);
  EXPECT_EQ(l.max_seq_len, 2048);
  EXPECT_FALSE(l.tie_embeddings);
  EXPECT_FALSE(l.bias);
  EXPECT_FLOAT_EQ(l.rope_theta, 10000.0f);
  const ModelConfig l1 = ModelConfig::preset("llama-1B");
  EXPECT_EQ(l1.vocab_size, 128256);
  EXPECT_FLOAT_EQ(l1.rope_theta, 500000.0f);
  const ModelConfig lt = ModelConfig::preset("llama-tiny");
  EXPECT_EQ(lt.n_kv_head, 1);
  EXPECT_EQ(lt.head_dim() % 2, 0);
}

TEST(Config, FamilyNamesRoundTrip) {
  EXPECT_EQ(family_from_name(family_name(Family::gpt2)), Family::gpt2);
  EXPECT_EQ(family_from_name(family_name(Family::llama)), Family::llama);
  EXPECT_THROW(family_from_name("mamba"), ConfigError);
}

TEST(Config, ForFamilySetsSwitches) {
  const ModelConfig g = ModelConfig::for_family(Family::gpt2);
  EXPECT_TRUE(g.tie_embeddings && g.bias);
  const ModelConfig l = ModelConfig::for_family(Family::llama);
  EXPECT_FALSE(l.tie_embeddings || l.bias);
  ModelConfig c = ModelConfig::preset("llama-tiny");
  c.d_ff = 0;
  c.set_family(Family::llama);
  EXPECT_EQ(c.d_ff, 88);  // 8*32/3 = 85.3 -> multiple of 8
  c.set_family(Family::gpt2);
  EXPECT_EQ(c.d_ff, 88);  // only filled when 0
}

TEST(Config, PadVocab) {
  EXPECT_EQ(ModelConfig::pad_vocab(50257), 50304);
  EXPECT_EQ(ModelConfig::pad_vocab(32000), 32000);
  EXPECT_EQ(ModelConfig::pad_vocab(1), 64);
  EXPECT_EQ(ModelConfig::pad_vocab(100, 128), 128);
  EXPECT_THROW(ModelConfig::pad_vocab(0), ConfigError);
  EXPECT_THROW(ModelConfig::pad_vocab(10, 0), ConfigError);
}

TEST(Config, EveryRuleNamesItsField) {
  using C = ModelConfig&;
  expect_rejected(with("gpt2-tiny", [](C c) { c.vocab_size = 0; }), "vocab_size", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.vocab_size = -5; }), "vocab_size", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.vocab_size = c.padded_vocab_size = 1 << 25; }), "vocab_size",
                  "at most");
  expect_rejected(with("gpt2-tiny", [](C c) { c.padded_vocab_size = 0; }), "padded_vocab_size", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.padded_vocab_size = c.vocab_size - 1; }), "padded_vocab_size",
                  ">= vocab_size");
  expect_rejected(with("gpt2-tiny", [](C c) { c.max_seq_len = 0; }), "max_seq_len", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.max_seq_len = 1 << 21; }), "max_seq_len", "at most");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_layer = 0; }), "n_layer", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_layer = 5000; }), "n_layer", "at most");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_head = 0; }), "n_head", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_head = 3; c.n_kv_head = 3; }), "n_head", "divide d_model");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_kv_head = 0; }), "n_kv_head", "positive");
  expect_rejected(with("llama-tiny", [](C c) { c.n_head = 4; c.n_kv_head = 3; }), "n_kv_head", "divide n_head");
  expect_rejected(with("gpt2-tiny", [](C c) { c.n_kv_head = 1; }), "n_kv_head", "n_kv_head == n_head");
  expect_rejected(with("gpt2-tiny", [](C c) { c.d_model = 0; }), "d_model", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.d_model = 1 << 17; }), "d_model", "at most");
  expect_rejected(with("gpt2-tiny", [](C c) { c.d_ff = 0; }), "d_ff", "positive");
  expect_rejected(with("gpt2-tiny", [](C c) { c.d_ff = 1 << 21; }), "d_ff", "at most");
  expect_rejected(with("gpt2-tiny", [](C c) { c.norm_eps = 0.0f; }), "norm_eps", "(0, 1]");
  expect_rejected(with("gpt2-tiny", [](C c) { c.norm_eps = -1e-5f; }), "norm_eps", "(0, 1]");
  expect_rejected(with("gpt2-tiny", [](C c) { c.bias = false; }), "bias", "gpt2 requires");
  // head_dim = 30 / 2 = 15: odd, RoPE rotates pairs.
  expect_rejected(with("llama-tiny", [](C c) { c.d_model = 30; }), "d_model", "even head_dim");
  expect_rejected(with("llama-tiny", [](C c) { c.rope_theta = 0.0f; }), "rope_theta", "> 1");
  expect_rejected(with("llama-tiny", [](C c) { c.family = static_cast<Family>(7); }), "family", "gpt2 or llama");
  // GPT-2 has no RoPE: an odd head_dim is fine there.
  EXPECT_NO_THROW(with("gpt2-tiny", [](C c) { c.d_model = 30; c.d_ff = 120; }).validate());
  // LLaMA may tie its embeddings and carry linear biases.
  EXPECT_NO_THROW(with("llama-tiny", [](C c) { c.tie_embeddings = true; c.bias = true; }).validate());
}

TEST(Config, ModelRejectsInvalidConfig) {
  ModelConfig c = ModelConfig::preset("gpt2-tiny");
  c.n_head = 3;
  c.n_kv_head = 3;
  EXPECT_THROW(Model m(c), ConfigError);
}

// GPT-2 124M: HF's GPT2LMHeadModel counts 124,439,808 parameters with vocab 50257
// (wte 50257*768 + wpe 1024*768 + 12 * 7,087,872 per block + ln_f 1536; lm_head tied).
// Our table pads the vocabulary to 50304 rows, adding 47*768 = 36,096: 124,475,904,
// the figure llm.c prints ("num_parameters: 124475904").
TEST(Config, Gpt2_124MParameterCount) {
  const ModelConfig c = ModelConfig::preset("gpt2-124M");
  const ParamLayout layout = make_param_layout(c);
  EXPECT_EQ(layout.count(), size_t{124475904});
  const size_t padding_rows = static_cast<size_t>(c.padded_vocab_size - c.vocab_size) * c.d_model;
  EXPECT_EQ(layout.count() - padding_rows, size_t{124439808});
}

// Llama-3.2-1B (tied): 1,235,814,400 parameters.
TEST(Config, Llama1BParameterCount) {
  const ParamLayout layout = make_param_layout(ModelConfig::preset("llama-1B"));
  EXPECT_EQ(layout.count(), size_t{1235814400});
}

}  // namespace
}  // namespace teddy
