#include "teddy/model/config_json.h"

#include <nlohmann/json.hpp>

#include "teddy/core/error.h"

namespace teddy {

std::string model_config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["family"] = std::string(family_name(c.family));
  j["vocab_size"] = c.vocab_size;
  j["padded_vocab_size"] = c.padded_vocab_size;
  j["max_seq_len"] = c.max_seq_len;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_kv_head"] = c.n_kv_head;
  j["d_model"] = c.d_model;
  j["d_ff"] = c.d_ff;
  j["norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_embeddings"] = c.tie_embeddings;
  j["bias"] = c.bias;
  // Written only when set, so the configs of models without them read as before.
  if (c.qkv_bias) j["qkv_bias"] = true;
  if (c.rope_scaling.type == RopeScaling::Type::llama3) {
    const RopeScaling& r = c.rope_scaling;
    j["rope_scaling"] = {{"type", "llama3"},
                         {"factor", r.factor},
                         {"low_freq_factor", r.low_freq_factor},
                         {"high_freq_factor", r.high_freq_factor},
                         {"original_max_position_embeddings", r.original_max_position_embeddings}};
  }
  return j.dump(2);
}

ModelConfig model_config_from_json(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": model config is not valid JSON: " + e.what());
  }
  ModelConfig c;
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw FormatError(where + ": model config lacks field \"" + key + "\"");
    return j.at(key);
  };
  try {
    c.family = family_from_name(need("family").get<std::string>());
    c.vocab_size = need("vocab_size").get<int>();
    c.padded_vocab_size = need("padded_vocab_size").get<int>();
    c.max_seq_len = need("max_seq_len").get<int>();
    c.n_layer = need("n_layer").get<int>();
    c.n_head = need("n_head").get<int>();
    c.n_kv_head = need("n_kv_head").get<int>();
    c.d_model = need("d_model").get<int>();
    c.d_ff = need("d_ff").get<int>();
    c.norm_eps = need("norm_eps").get<float>();
    c.rope_theta = need("rope_theta").get<float>();
    c.tie_embeddings = need("tie_embeddings").get<bool>();
    c.bias = need("bias").get<bool>();
    c.qkv_bias = j.value("qkv_bias", false);  // absent in checkpoints written before it existed
    if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
      const nlohmann::json& r = j.at("rope_scaling");
      const std::string type = r.at("type").get<std::string>();
      if (type != "llama3") throw FormatError(where + ": model config rope_scaling.type: expected \"llama3\" (got \"" + type + "\")");
      c.rope_scaling.type = RopeScaling::Type::llama3;
      c.rope_scaling.factor = r.at("factor").get<float>();
      c.rope_scaling.low_freq_factor = r.at("low_freq_factor").get<float>();
      c.rope_scaling.high_freq_factor = r.at("high_freq_factor").get<float>();
      c.rope_scaling.original_max_position_embeddings = r.at("original_max_position_embeddings").get<int>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": model config field has the wrong type: " + e.what());
  } catch (const ConfigError& e) {
    throw FormatError(where + ": " + e.what());
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw FormatError(where + ": " + e.what());
  }
  return c;
}

}  // namespace teddy
