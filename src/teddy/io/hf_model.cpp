#include "teddy/io/hf_model.h"
#include "teddy/io/hf_bnb4.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <climits>
#include <cstdlib>

#include "teddy/core/error.h"

namespace teddy {

namespace {

using json = nlohmann::json;

// Errors name the file and the key: "<path>: <key>: <what>".
struct ConfigReader {
  const json& j;
  const std::string& path;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw FormatError(path + ": " + key + ": " + what);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  int positive_int(const std::string& key) const {
    if (!has(key)) fail(key, "missing");
    const json& v = j[key];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > INT_MAX)
      fail(key, "expected a positive integer (got " + v.dump() + ")");
    return static_cast<int>(v.get<int64_t>());
  }
  int positive_int_or(const std::string& key, int fallback) const { return has(key) ? positive_int(key) : fallback; }
  double number_or(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_number()) fail(key, "expected a number (got " + j[key].dump() + ")");
    return j[key].get<double>();
  }
  bool bool_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_boolean()) fail(key, "expected true or false (got " + j[key].dump() + ")");
    return j[key].get<bool>();
  }
  std::string string_or(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j[key].is_string()) fail(key, "expected a string (got " + j[key].dump() + ")");
    return j[key].get<std::string>();
  }
  // A key whose only supported value is `want` (absent counts as the transformers default).
  void require_bool(const std::string& key, bool fallback, bool want, const std::string& why) const {
    if (bool_or(key, fallback) != want) fail(key, std::string("only ") + (want ? "true" : "false") + " is supported (" + why + ")");
  }
  float to_float(const std::string& key, double v) const {
    const float f = static_cast<float>(v);
    if (!std::isfinite(f)) fail(key, "out of float range (got " + json(v).dump() + ")");
    return f;
  }
};

json token_id_field(const ConfigReader& r, const std::string& key) {
  if (!r.j.contains(key)) return nullptr;
  const json& v = r.j[key];
  if (!is_hf_token_ids(v)) r.fail(key, "expected a token id or a list of them (got " + v.dump() + ")");
  return v;
}

void check_architectures(const ConfigReader& r, const std::string& want) {
  const std::string trunk_name = want.substr(0, want.find("For")) + "Model";  // LlamaModel, Qwen2Model
  if (!r.j.contains("architectures") || r.j["architectures"].is_null()) return;
  const json& a = r.j["architectures"];
  if (!a.is_array() || a.size() != 1 || !a[0].is_string())
    r.fail("architectures", "expected [\"" + want + "\"] (got " + a.dump() + ")");
  const std::string got = a[0].get<std::string>();
  // GPT2Model / LlamaModel checkpoints hold the same trunk; the head is the tied embedding
  // or an lm_head.weight tensor, which the tensor check below requires.
  const bool trunk = (want == "GPT2LMHeadModel" && got == "GPT2Model") || (want != "GPT2LMHeadModel" && got == trunk_name);
  if (got != want && !trunk)
    r.fail("architectures",
           "\"" + got + "\" is not supported (teddy reads GPT2LMHeadModel, LlamaForCausalLM and Qwen2ForCausalLM)");
}

ModelConfig gpt2_config(const ConfigReader& r) {
  check_architectures(r, "GPT2LMHeadModel");
  ModelConfig c = ModelConfig::for_family(Family::gpt2);
  c.d_model = r.positive_int("n_embd");
  c.n_head = r.positive_int("n_head");
  c.n_kv_head = c.n_head;
  c.n_layer = r.positive_int("n_layer");
  c.max_seq_len = r.has("n_positions") ? r.positive_int("n_positions") : r.positive_int("n_ctx");
  c.vocab_size = r.positive_int("vocab_size");
  c.d_ff = r.positive_int_or("n_inner", 4 * c.d_model);
  c.norm_eps = r.to_float("layer_norm_epsilon", r.number_or("layer_norm_epsilon", 1e-5));
  const std::string act = r.string_or("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    r.fail("activation_function", "\"" + act + "\" is not supported (teddy's GELU is the tanh approximation: gelu_new, gelu_pytorch_tanh)");
  r.require_bool("scale_attn_weights", true, true, "attention scores are scaled by 1/sqrt(head_dim)");
  r.require_bool("scale_attn_by_inverse_layer_idx", false, false, "no per-layer attention scaling");
  r.require_bool("add_cross_attention", false, false, "decoder-only");
  c.tie_embeddings = r.bool_or("tie_word_embeddings", true);
  c.bias = true;
  return c;
}

// RoPE scaling from rope_scaling (transformers < 5) or rope_parameters (>= 5, which
// also carries rope_theta): null / "default", or Llama 3.1's "llama3" with its four keys.
RopeScaling rope_scaling_of(const ConfigReader& r, const std::string& key, double* theta) {
  RopeScaling out;
  if (!r.has(key)) return out;
  const json& s = r.j[key];
  if (!s.is_object()) r.fail(key, "expected an object or null (got " + s.dump() + ")");
  // rope_type is the current spelling; old configs say "type".
  const json& t = s.contains("rope_type") ? s["rope_type"] : s.contains("type") ? s["type"] : json("default");
  if (!t.is_string()) r.fail(key + ".rope_type", "expected a string (got " + t.dump() + ")");
  const std::string type = t.get<std::string>();
  if (s.contains("rope_theta")) {
    if (!s["rope_theta"].is_number()) r.fail(key + ".rope_theta", "expected a number (got " + s["rope_theta"].dump() + ")");
    *theta = s["rope_theta"].get<double>();
  }
  if (type == "default") return out;
  if (type != "llama3")
    r.fail(key, "rope_type \"" + type + "\" is not supported (only null, \"default\" and \"llama3\")");
  auto number = [&](const char* k) {
    if (!s.contains(k) || !s[k].is_number()) r.fail(key + "." + k, "expected a number (llama3 scaling needs it)");
    return s[k].get<double>();
  };
  out.type = RopeScaling::Type::llama3;
  out.factor = r.to_float(key + ".factor", number("factor"));
  out.low_freq_factor = r.to_float(key + ".low_freq_factor", number("low_freq_factor"));
  out.high_freq_factor = r.to_float(key + ".high_freq_factor", number("high_freq_factor"));
  const double orig = number("original_max_position_embeddings");
  if (orig != std::floor(orig) || orig <= 0 || orig > INT_MAX)
    r.fail(key + ".original_max_position_embeddings", "expected a positive integer (got " + json(orig).dump() + ")");
  out.original_max_position_embeddings = static_cast<int>(orig);
  for (const char* k : {"attention_factor", "beta_fast", "beta_slow", "short_factor", "long_factor", "mscale"})
    if (s.contains(k) && !s[k].is_null()) r.fail(key + "." + k, "not a llama3 key: teddy does not read it");
  return out;
}

// LLaMA, and Qwen2 (the same trunk with biases on q/k/v only).
ModelConfig llama_config(const ConfigReader& r, bool qwen2) {
  check_architectures(r, qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
  ModelConfig c = ModelConfig::for_family(Family::llama);
  c.d_model = r.positive_int("hidden_size");
  c.d_ff = r.positive_int("intermediate_size");
  c.n_layer = r.positive_int("num_hidden_layers");
  c.n_head = r.positive_int("num_attention_heads");
  c.n_kv_head = r.positive_int_or("num_key_value_heads", c.n_head);
  c.vocab_size = r.positive_int_or("vocab_size", 32000);
  c.max_seq_len = r.positive_int_or("max_position_embeddings", 2048);
  if (r.has("head_dim")) {
    const int hd = r.positive_int("head_dim");
    if (static_cast<int64_t>(hd) * c.n_head != c.d_model)
      r.fail("head_dim", "must equal hidden_size / num_attention_heads = " + std::to_string(c.d_model) + " / " +
                             std::to_string(c.n_head) + " (got " + std::to_string(hd) + ")");
  }
  const std::string act = r.string_or("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", "\"" + act + "\" is not supported (teddy's SwiGLU uses silu)");
  c.norm_eps = r.to_float("rms_norm_eps", r.number_or("rms_norm_eps", 1e-6));
  double theta = r.number_or("rope_theta", 10000.0);
  c.rope_scaling = rope_scaling_of(r, "rope_scaling", &theta);
  if (r.has("rope_parameters")) {  // transformers >= 5 spells it this way
    if (c.rope_scaling.type != RopeScaling::Type::none)
      r.fail("rope_parameters", "given together with a non-default rope_scaling: say it once");
    c.rope_scaling = rope_scaling_of(r, "rope_parameters", &theta);
  }
  c.rope_theta = r.to_float("rope_theta", theta);
  if (qwen2) {
    // Qwen2Attention: q/k/v biases always, none on o_proj or the MLP (no config key).
    c.bias = false;
    c.qkv_bias = true;
    // Qwen2 configs carry a sliding_window size that only applies with use_sliding_window.
    if (r.bool_or("use_sliding_window", false))
      r.fail("use_sliding_window", "sliding-window attention is not supported (only false)");
  } else {
    const bool attention_bias = r.bool_or("attention_bias", false), mlp_bias = r.bool_or("mlp_bias", false);
    if (attention_bias != mlp_bias)
      r.fail(attention_bias ? "attention_bias" : "mlp_bias",
             "teddy's layout has biases on every linear or on none: attention_bias and mlp_bias must be equal");
    c.bias = attention_bias;
    if (r.has("sliding_window")) r.fail("sliding_window", "sliding-window attention is not supported (only null)");
  }
  c.tie_embeddings = r.bool_or("tie_word_embeddings", false);
  return c;
}

}  // namespace

bool is_hf_token_ids(const json& v) {
  auto is_id = [](const json& x) { return x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() <= INT_MAX; };
  return v.is_null() || is_id(v) || (v.is_array() && std::all_of(v.begin(), v.end(), is_id));
}

std::string hf_architecture(Family f) { return f == Family::gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"; }

std::string hf_architecture(const ModelConfig& cfg) {
  return cfg.qkv_bias ? "Qwen2ForCausalLM" : hf_architecture(cfg.family);
}

ModelConfig hf_config_to_model(const json& config, const std::string& path, HfConfigExtras* extras) {
  if (!config.is_object()) throw FormatError(path + ": expected a JSON object");
  const ConfigReader r{config, path};
  std::string model_type = r.string_or("model_type", "");
  if (model_type.empty()) {
    // Old configs name only the architecture.
    if (r.has("architectures") && config["architectures"].is_array() && !config["architectures"].empty() &&
        config["architectures"][0].is_string()) {
      const std::string a = config["architectures"][0].get<std::string>();
      model_type = a.rfind("GPT2", 0) == 0    ? "gpt2"
                   : a.rfind("Llama", 0) == 0 ? "llama"
                   : a.rfind("Qwen2", 0) == 0 ? "qwen2"
                                              : a;
    } else {
      r.fail("model_type", "missing (and no architectures to go by)");
    }
  }
  read_bnb4_config(config, path);  // only bitsandbytes 4-bit NF4 is read (hf_bnb4.h); anything else is refused by key
  ModelConfig c;
  if (model_type == "gpt2") {
    c = gpt2_config(r);
  } else if (model_type == "llama" || model_type == "qwen2") {
    c = llama_config(r, model_type == "qwen2");
  } else {
    r.fail("model_type", "\"" + model_type + "\" is not supported (teddy reads gpt2, llama and qwen2)");
  }
  c.padded_vocab_size = ModelConfig::pad_vocab(c.vocab_size);
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw FormatError(path + ": " + e.what());
  }
  if (extras) {
    extras->architecture = hf_architecture(c);
    extras->bos_token_id = token_id_field(r, "bos_token_id");
    extras->eos_token_id = token_id_field(r, "eos_token_id");
    extras->pad_token_id = token_id_field(r, "pad_token_id");
    extras->torch_dtype = r.string_or("torch_dtype", r.string_or("dtype", ""));
  }
  return c;
}

double float_for_json(float v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return std::strtod(std::string(buf, res.ptr).c_str(), nullptr);
}

json model_to_hf_config(const ModelConfig& cfg, const HfConfigExtras& extras, const std::string& torch_dtype) {
  json j;  // std::map: keys sorted, as transformers' to_json_string(sort_keys=True)
  j["architectures"] = json::array({hf_architecture(cfg)});
  j["bos_token_id"] = extras.bos_token_id;
  j["eos_token_id"] = extras.eos_token_id;
  if (!extras.pad_token_id.is_null()) j["pad_token_id"] = extras.pad_token_id;
  j["tie_word_embeddings"] = cfg.tie_embeddings;
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  j["vocab_size"] = cfg.vocab_size;
  j["initializer_range"] = 0.02;
  if (cfg.family == Family::gpt2) {
    j["model_type"] = "gpt2";
    j["activation_function"] = "gelu_new";
    j["attn_pdrop"] = 0.0;
    j["embd_pdrop"] = 0.0;
    j["resid_pdrop"] = 0.0;
    j["layer_norm_epsilon"] = float_for_json(cfg.norm_eps);
    j["n_ctx"] = cfg.max_seq_len;
    j["n_positions"] = cfg.max_seq_len;
    j["n_embd"] = cfg.d_model;
    j["n_head"] = cfg.n_head;
    j["n_layer"] = cfg.n_layer;
    j["n_inner"] = cfg.d_ff == 4 * cfg.d_model ? json(nullptr) : json(cfg.d_ff);
    j["scale_attn_weights"] = true;
    j["scale_attn_by_inverse_layer_idx"] = false;
    j["reorder_and_upcast_attn"] = false;
  } else {
    if (cfg.qkv_bias) {  // Qwen2Config: the q/k/v biases are implied, no bias keys
      j["model_type"] = "qwen2";
      j["use_sliding_window"] = false;
      j["sliding_window"] = nullptr;
      j["max_window_layers"] = cfg.n_layer;
    } else {
      j["model_type"] = "llama";
      j["attention_bias"] = cfg.bias;
      j["mlp_bias"] = cfg.bias;
      j["pretraining_tp"] = 1;
    }
    j["attention_dropout"] = 0.0;
    j["head_dim"] = cfg.head_dim();
    j["hidden_act"] = "silu";
    j["hidden_size"] = cfg.d_model;
    j["intermediate_size"] = cfg.d_ff;
    j["max_position_embeddings"] = cfg.max_seq_len;
    j["num_attention_heads"] = cfg.n_head;
    j["num_hidden_layers"] = cfg.n_layer;
    j["num_key_value_heads"] = cfg.n_kv_head;
    j["rms_norm_eps"] = float_for_json(cfg.norm_eps);
    if (cfg.rope_scaling.type == RopeScaling::Type::llama3) {
      const RopeScaling& s = cfg.rope_scaling;
      j["rope_scaling"] = {{"factor", float_for_json(s.factor)},
                           {"high_freq_factor", float_for_json(s.high_freq_factor)},
                           {"low_freq_factor", float_for_json(s.low_freq_factor)},
                           {"original_max_position_embeddings", s.original_max_position_embeddings},
                           {"rope_type", "llama3"}};
    } else {
      j["rope_scaling"] = nullptr;
    }
    j["rope_theta"] = float_for_json(cfg.rope_theta);
  }
  return j;
}

std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& cfg) {
  std::vector<HfTensorSpec> out;
  const int64_t C = cfg.d_model, V = cfg.vocab_size, F = cfg.d_ff, HS = cfg.head_dim();
  const int64_t Q = cfg.n_head * HS, KV = cfg.n_kv_head * HS;
  // A slice of rows of a teddy [rows, cols] tensor (cols = 1 for vectors).
  auto add = [&](std::string hf, std::string teddy, int64_t row_begin, int64_t rows, int64_t cols, bool transpose) {
    HfTensorSpec s;
    s.hf_name = std::move(hf);
    s.teddy_name = std::move(teddy);
    s.row_begin = row_begin;
    s.rows = rows;
    s.cols = cols;
    s.transpose = transpose;
    if (cols == 1 && !transpose) s.hf_shape = {rows};
    else s.hf_shape = transpose ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols};
    out.push_back(std::move(s));
  };
  if (cfg.family == Family::gpt2) {
    const std::string t = "transformer.";
    add(t + "wte.weight", "tok_emb.weight", 0, V, C, false);
    add(t + "wpe.weight", "pos_emb.weight", 0, cfg.max_seq_len, C, false);
    for (int i = 0; i < cfg.n_layer; ++i) {
      const std::string h = t + "h." + std::to_string(i) + ".", l = "layers." + std::to_string(i) + ".";
      add(h + "ln_1.weight", l + "norm1.weight", 0, C, 1, false);
      add(h + "ln_1.bias", l + "norm1.bias", 0, C, 1, false);
      add(h + "attn.c_attn.weight", l + "attn.qkv.weight", 0, cfg.qkv_dim(), C, true);
      add(h + "attn.c_attn.bias", l + "attn.qkv.bias", 0, cfg.qkv_dim(), 1, false);
      add(h + "attn.c_proj.weight", l + "attn.proj.weight", 0, C, Q, true);
      add(h + "attn.c_proj.bias", l + "attn.proj.bias", 0, C, 1, false);
      add(h + "ln_2.weight", l + "norm2.weight", 0, C, 1, false);
      add(h + "ln_2.bias", l + "norm2.bias", 0, C, 1, false);
      add(h + "mlp.c_fc.weight", l + "mlp.up.weight", 0, F, C, true);
      add(h + "mlp.c_fc.bias", l + "mlp.up.bias", 0, F, 1, false);
      add(h + "mlp.c_proj.weight", l + "mlp.down.weight", 0, C, F, true);
      add(h + "mlp.c_proj.bias", l + "mlp.down.bias", 0, C, 1, false);
    }
    add(t + "ln_f.weight", "final_norm.weight", 0, C, 1, false);
    add(t + "ln_f.bias", "final_norm.bias", 0, C, 1, false);
  } else {
    add("model.embed_tokens.weight", "tok_emb.weight", 0, V, C, false);
    for (int i = 0; i < cfg.n_layer; ++i) {
      const std::string h = "model.layers." + std::to_string(i) + ".", l = "layers." + std::to_string(i) + ".";
      const std::string qkv = l + "attn.qkv.", up = l + "mlp.up.";
      const int64_t rows[3] = {Q, KV, KV}, begin[3] = {0, Q, Q + KV};
      const char* names[3] = {"q_proj", "k_proj", "v_proj"};
      for (int k = 0; k < 3; ++k) {
        add(h + "self_attn." + names[k] + ".weight", qkv + "weight", begin[k], rows[k], C, false);
        if (cfg.has_qkv_bias()) add(h + "self_attn." + names[k] + ".bias", qkv + "bias", begin[k], rows[k], 1, false);
      }
      add(h + "self_attn.o_proj.weight", l + "attn.proj.weight", 0, C, Q, false);
      if (cfg.bias) add(h + "self_attn.o_proj.bias", l + "attn.proj.bias", 0, C, 1, false);
      add(h + "mlp.gate_proj.weight", up + "weight", 0, F, C, false);
      if (cfg.bias) add(h + "mlp.gate_proj.bias", up + "bias", 0, F, 1, false);
      add(h + "mlp.up_proj.weight", up + "weight", F, F, C, false);
      if (cfg.bias) add(h + "mlp.up_proj.bias", up + "bias", F, F, 1, false);
      add(h + "mlp.down_proj.weight", l + "mlp.down.weight", 0, C, F, false);
      if (cfg.bias) add(h + "mlp.down_proj.bias", l + "mlp.down.bias", 0, C, 1, false);
      add(h + "input_layernorm.weight", l + "norm1.weight", 0, C, 1, false);
      add(h + "post_attention_layernorm.weight", l + "norm2.weight", 0, C, 1, false);
    }
    add("model.norm.weight", "final_norm.weight", 0, C, 1, false);
  }
  if (!cfg.tie_embeddings) add("lm_head.weight", "lm_head.weight", 0, V, C, false);
  return out;
}

bool hf_ignorable_tensor(Family f, const std::string& name) {
  auto ends_with = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (f == Family::gpt2) return ends_with(".attn.bias") || ends_with(".attn.masked_bias");
  return ends_with(".rotary_emb.inv_freq");
}

}  // namespace teddy
