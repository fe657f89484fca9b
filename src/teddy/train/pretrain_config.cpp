#include "teddy/train/pretrain_config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/toml_config.h"

namespace teddy {

namespace {

using toml_config::get_as;
using Key = toml_config::Setter<PretrainConfig>;

template <class T, class F>
Key field(F accessor, const char* want) {
  return toml_config::field<T, PretrainConfig>(accessor, want);
}

const toml_config::KeyTable<PretrainConfig>& keys() {
  static const toml_config::KeyTable<PretrainConfig> k = [] {
    toml_config::KeyTable<PretrainConfig> t = {
      {"model.preset", field<std::string>([](PretrainConfig& c) -> std::string& { return c.model_preset; }, "a preset name")},
      {"model.family", [](PretrainConfig& c, const toml::node& n, const std::string& w) {
         c.model.set_family(family_from_name(get_as<std::string>(n, w, "\"gpt2\" or \"llama\"")));
       }},
      {"model.n_layer", field<int>([](PretrainConfig& c) -> int& { return c.model.n_layer; }, "an integer")},
      {"model.n_head", field<int>([](PretrainConfig& c) -> int& { return c.model.n_head; }, "an integer")},
      {"model.n_kv_head", field<int>([](PretrainConfig& c) -> int& { return c.model.n_kv_head; }, "an integer")},
      {"model.d_model", field<int>([](PretrainConfig& c) -> int& { return c.model.d_model; }, "an integer")},
      {"model.d_ff", field<int>([](PretrainConfig& c) -> int& { return c.model.d_ff; }, "an integer")},
      {"model.max_seq_len", field<int>([](PretrainConfig& c) -> int& { return c.model.max_seq_len; }, "an integer")},
      {"model.norm_eps", field<float>([](PretrainConfig& c) -> float& { return c.model.norm_eps; }, "a number")},
      {"model.rope_theta", field<float>([](PretrainConfig& c) -> float& { return c.model.rope_theta; }, "a number")},
      // The switches a model imported from Hugging Face may carry (set after family,
      // which resets tie_embeddings and bias), so `pretrain --resume` can continue it.
      {"model.tie_embeddings", field<bool>([](PretrainConfig& c) -> bool& { return c.model.tie_embeddings; }, "true or false")},
      {"model.bias", field<bool>([](PretrainConfig& c) -> bool& { return c.model.bias; }, "true or false")},
      {"model.qkv_bias", field<bool>([](PretrainConfig& c) -> bool& { return c.model.qkv_bias; }, "true or false")},
      {"model.rope_scaling", [](PretrainConfig& c, const toml::node& n, const std::string& w) {
         const std::string t = get_as<std::string>(n, w, "\"none\" or \"llama3\"");
         if (t != "none" && t != "llama3") throw ConfigError(w + ": expected \"none\" or \"llama3\" (got \"" + t + "\")");
         c.model.rope_scaling.type = t == "llama3" ? RopeScaling::Type::llama3 : RopeScaling::Type::none;
       }},
      {"model.rope_factor", field<float>([](PretrainConfig& c) -> float& { return c.model.rope_scaling.factor; }, "a number")},
      {"model.rope_low_freq_factor",
       field<float>([](PretrainConfig& c) -> float& { return c.model.rope_scaling.low_freq_factor; }, "a number")},
      {"model.rope_high_freq_factor",
       field<float>([](PretrainConfig& c) -> float& { return c.model.rope_scaling.high_freq_factor; }, "a number")},
      {"model.rope_original_max_position_embeddings",
       field<int>([](PretrainConfig& c) -> int& { return c.model.rope_scaling.original_max_position_embeddings; },
                  "an integer")},
      {"data.dataset", field<std::string>([](PretrainConfig& c) -> std::string& { return c.dataset; }, "a directory path")},
      {"data.mix", field<std::string>([](PretrainConfig& c) -> std::string& { return c.mix; }, "a string like \"prose=0.6,code=0.4\"")},
      {"train.micro_batch", field<int>([](PretrainConfig& c) -> int& { return c.micro_batch; }, "an integer")},
      {"train.seq_len", field<int>([](PretrainConfig& c) -> int& { return c.seq_len; }, "an integer")},
      {"train.grad_accum", field<int>([](PretrainConfig& c) -> int& { return c.grad_accum; }, "an integer")},
      {"train.steps", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.steps; }, "an integer")},
      {"train.tokens", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.tokens; }, "an integer")},
      {"train.seed", field<uint64_t>([](PretrainConfig& c) -> uint64_t& { return c.seed; }, "an integer")},
      {"train.threads", field<int>([](PretrainConfig& c) -> int& { return c.threads; }, "an integer")},
      {"train.recompute", field<std::string>([](PretrainConfig& c) -> std::string& { return c.recompute; }, "\"none\", \"attention\" or \"block\"")},
    };
    add_common_keys(t);  // [optim] [eval] [checkpoint] [dist] [run]
    return t;
  }();
  return k;
}

}  // namespace

PretrainConfig::PretrainConfig() {
  lr = 1e-3f;
  warmup_steps = 20;
  weight_decay = 0.1f;
  eval_batches = 8;
  keep_checkpoints = 3;
  run_dir = "runs/pretrain";
}

int64_t PretrainConfig::total_steps() const {
  // The token budget counts the global batch: dp ranks each read tokens_per_step().
  const int64_t g = global_tokens_per_step();
  if (tokens > 0) return (tokens + g - 1) / g;
  return steps;
}

PretrainConfig PretrainConfig::parse(const std::string& text, const std::string& source,
                                     const std::vector<std::string>& overrides) {
  const toml::table tbl = toml_config::parse_with_overrides(text, source, overrides);

  PretrainConfig c;
  // The preset is the base the other model keys modify, so read it first.
  if (auto p = tbl["model"]["preset"])
    c.model_preset = get_as<std::string>(*p.node(), toml_config::key_origin(source, "model.preset", overrides), "a preset name");
  c.model = ModelConfig::preset(c.model_preset);
  // The family next: it resets tie_embeddings and bias, which model.* keys may then set
  // (TOML tables iterate in key order, so "bias" would come before "family").
  if (auto f = tbl["model"]["family"]) keys().at("model.family")(c, *f.node(), toml_config::key_origin(source, "model.family", overrides));

  toml_config::apply_keys(c, tbl, source, keys(), {"model.preset", "model.family"}, overrides);
  return c;
}

PretrainConfig PretrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  return parse(toml_config::read_config_file(path), path, overrides);
}

void PretrainConfig::finalize(int vocab_size) {
  model.vocab_size = vocab_size;
  model.padded_vocab_size = ModelConfig::pad_vocab(vocab_size);
  validate();
}

void PretrainConfig::validate() const {
  auto positive = [](bool ok, const char* key, const std::string& rule) {
    if (!ok) throw ConfigError(std::string(key) + ": " + rule);
  };
  positive(micro_batch >= 1, "train.micro_batch", "must be >= 1 (got " + std::to_string(micro_batch) + ")");
  positive(seq_len >= 1, "train.seq_len", "must be >= 1 (got " + std::to_string(seq_len) + ")");
  positive(seq_len <= model.max_seq_len, "train.seq_len",
           "must be <= model.max_seq_len (" + std::to_string(seq_len) + " > " + std::to_string(model.max_seq_len) + ")");
  positive(grad_accum >= 1, "train.grad_accum", "must be >= 1 (got " + std::to_string(grad_accum) + ")");
  positive(steps >= 0 && tokens >= 0, "train.steps", "steps and tokens must be >= 0");
  positive(total_steps() >= 1, "train.steps", "the run needs at least one step (set train.steps or train.tokens)");
  positive(threads >= 0, "train.threads", "must be >= 0 (0 = all cores)");
  try {
    recompute_from_name(recompute);  // the model's own parser: the same names everywhere
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("train.") + e.what());
  }
  CommonRules rules;
  rules.total_steps = total_steps();
  validate_common(*this, rules);
  positive(!dataset.empty(), "data.dataset", "must not be empty");
  try {
    model.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("model.") + e.what());
  }
}

std::string PretrainConfig::to_toml() const {
  toml::table t;
  t.insert("model", toml::table{{"preset", model_preset},
                                {"family", std::string(family_name(model.family))},
                                {"n_layer", model.n_layer},
                                {"n_head", model.n_head},
                                {"n_kv_head", model.n_kv_head},
                                {"d_model", model.d_model},
                                {"d_ff", model.d_ff},
                                {"max_seq_len", model.max_seq_len},
                                {"norm_eps", static_cast<double>(model.norm_eps)},
                                {"rope_theta", static_cast<double>(model.rope_theta)},
                                {"tie_embeddings", model.tie_embeddings},
                                {"bias", model.bias}});
  if (model.qkv_bias) t["model"].as_table()->insert("qkv_bias", true);
  if (model.rope_scaling.type == RopeScaling::Type::llama3) {
    const RopeScaling& r = model.rope_scaling;
    toml::table& m = *t["model"].as_table();
    m.insert("rope_scaling", "llama3");
    m.insert("rope_factor", static_cast<double>(r.factor));
    m.insert("rope_low_freq_factor", static_cast<double>(r.low_freq_factor));
    m.insert("rope_high_freq_factor", static_cast<double>(r.high_freq_factor));
    m.insert("rope_original_max_position_embeddings", r.original_max_position_embeddings);
  }
  t.insert("data", toml::table{{"dataset", dataset}, {"mix", mix}});
  t.insert("train", toml::table{{"micro_batch", micro_batch},
                                {"seq_len", seq_len},
                                {"grad_accum", grad_accum},
                                {"steps", total_steps()},
                                {"tokens", tokens},
                                {"seed", static_cast<int64_t>(seed)},
                                {"threads", threads},
                                {"recompute", recompute}});
  insert_common_toml(t, *this);
  std::ostringstream os;
  os << t << "\n";
  return os.str();
}

}  // namespace teddy
