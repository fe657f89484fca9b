// config.json <-> ModelConfig on the configs of real models (as published on the
// Hugging Face hub): GPT-2 and Meta-Llama-3-8B are read with their exact shapes;
// Llama-3.2-1B (rope_scaling "llama3") and Qwen2.5 (model_type "qwen2", q/k/v biases)
// are read with theirs; teddy's exported configs read back to the same ModelConfig.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "teddy/core/error.h"
#include "teddy/io/hf_model.h"
#include "teddy/checkpoint/checkpoint.h"

namespace teddy {
namespace {

using json = nlohmann::json;

// openai-community/gpt2
const char* kGpt2 = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
  "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
  "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
  "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257})";

// meta-llama/Meta-Llama-3-8B
const char* kLlama3_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 500000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0",
  "use_cache": true, "vocab_size": 128256})";

// meta-llama/Llama-3.2-1B
const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 128256})";

// Qwen/Qwen2.5-0.5B
const char* kQwen25 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

std::string refusal(const char* text) {
  try {
    hf_config_to_model(json::parse(text), "config.json", nullptr);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(HfConfig, Gpt2) {
  HfConfigExtras ex;
  const ModelConfig c = hf_config_to_model(json::parse(kGpt2), "config.json", &ex);
  ModelConfig want = ModelConfig::preset("gpt2-124M");
  EXPECT_EQ(model_config_difference(want, c), "");
  EXPECT_EQ(c.padded_vocab_size, 50304);
  EXPECT_EQ(ex.architecture, "GPT2LMHeadModel");
  EXPECT_EQ(ex.bos_token_id, 50256);
  EXPECT_EQ(ex.eos_token_id, 50256);
  EXPECT_TRUE(ex.pad_token_id.is_null());
}

TEST(HfConfig, Llama3_8B) {
  const ModelConfig c = hf_config_to_model(json::parse(kLlama3_8B), "config.json", nullptr);
  EXPECT_EQ(c.family, Family::llama);
  EXPECT_EQ(c.d_model, 4096);
  EXPECT_EQ(c.d_ff, 14336);
  EXPECT_EQ(c.n_layer, 32);
  EXPECT_EQ(c.n_head, 32);
  EXPECT_EQ(c.n_kv_head, 8);
  EXPECT_EQ(c.max_seq_len, 8192);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FALSE(c.bias);
}

TEST(HfConfig, Llama32WithRopeScaling) {
  HfConfigExtras ex;
  const ModelConfig c = hf_config_to_model(json::parse(kLlama32_1B), "config.json", &ex);
  EXPECT_EQ(ex.architecture, "LlamaForCausalLM");
  ModelConfig want = ModelConfig::preset("llama-1B");  // Llama-3.2-1B's shape
  want.max_seq_len = 131072;
  want.rope_scaling.type = RopeScaling::Type::llama3;
  want.rope_scaling.factor = 32.0f;
  want.rope_scaling.low_freq_factor = 1.0f;
  want.rope_scaling.high_freq_factor = 4.0f;
  want.rope_scaling.original_max_position_embeddings = 8192;
  EXPECT_EQ(model_config_difference(want, c), "");
  EXPECT_TRUE(c.rope_scaling == want.rope_scaling);
  // The same under transformers 5's rope_parameters (which carries rope_theta too).
  json v5 = json::parse(kLlama32_1B);
  v5["rope_parameters"] = v5["rope_scaling"];
  v5["rope_parameters"]["rope_theta"] = v5["rope_theta"];
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  const ModelConfig c5 = hf_config_to_model(v5, "config.json", nullptr);
  EXPECT_EQ(model_config_difference(want, c5), "");
  EXPECT_TRUE(c5.rope_scaling == want.rope_scaling);
}

TEST(HfConfig, Qwen25) {
  HfConfigExtras ex;
  const ModelConfig c = hf_config_to_model(json::parse(kQwen25), "config.json", &ex);
  EXPECT_EQ(ex.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.family, Family::llama);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.d_model, 896);
  EXPECT_EQ(c.d_ff, 4864);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.n_head, 14);
  EXPECT_EQ(c.n_kv_head, 2);
  EXPECT_EQ(c.max_seq_len, 32768);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::none);
  // Export writes a Qwen2 config that reads back the same.
  const json j = model_to_hf_config(c, ex, "bfloat16");
  EXPECT_EQ(j["model_type"], "qwen2");
  EXPECT_EQ(j["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_FALSE(j.contains("attention_bias"));
  EXPECT_EQ(model_config_difference(c, hf_config_to_model(j, "config.json", nullptr)), "");
  // Its sliding window only when switched on, which teddy refuses.
  json sw = json::parse(kQwen25);
  sw["use_sliding_window"] = true;
  const std::string msg = refusal(sw.dump().c_str());
  EXPECT_NE(msg.find("config.json: use_sliding_window"), std::string::npos) << msg;
}

TEST(HfConfig, ExportReadsBack) {
  for (const std::string& preset : ModelConfig::preset_names()) {
    SCOPED_TRACE(preset);
    ModelConfig c = ModelConfig::preset(preset);
    c.norm_eps = 1e-6f;
    HfConfigExtras ex;
    const json j = model_to_hf_config(c, ex, "float32");
    const ModelConfig back = hf_config_to_model(j, "config.json", nullptr);
    EXPECT_EQ(model_config_difference(c, back), "");
  }
  ModelConfig s = ModelConfig::preset("llama-tiny");
  s.rope_scaling.type = RopeScaling::Type::llama3;
  s.rope_scaling.factor = 8.0f;
  s.rope_scaling.original_max_position_embeddings = 16;
  const json j = model_to_hf_config(s, HfConfigExtras{}, "float32");
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(j["rope_scaling"]["original_max_position_embeddings"], 16);
  EXPECT_TRUE(hf_config_to_model(j, "config.json", nullptr).rope_scaling == s.rope_scaling);
  // Floats are written as the shortest decimal that reads back as the same float.
  EXPECT_EQ(json(float_for_json(1e-5f)).dump(), "1e-05");
  EXPECT_EQ(json(float_for_json(1e-6f)).dump(), "1e-06");
  EXPECT_EQ(json(float_for_json(500000.0f)).dump(), "500000.0");
}

}  // namespace
}  // namespace teddy
