#include "teddy/train/pretrain_config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/train/loss_scaler.h"
#include "teddy/train/toml_config.h"

namespace teddy {

namespace {

using toml_config::get_as;
using Key = toml_config::Setter<PretrainConfig>;

template <class T, class F>
Key field(F accessor, const char* want) {
  return toml_config::field<T, PretrainConfig>(accessor, want);
}

const std::map<std::string, Key>& keys() {
  static const std::map<std::string, Key> k = {
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
      {"train.precision", field<std::string>([](PretrainConfig& c) -> std::string& { return c.precision; }, "\"fp32\", \"bf16\" or \"fp16\"")},
      {"train.loss_scale", field<float>([](PretrainConfig& c) -> float& { return c.loss_scale; }, "a number")},
      {"train.loss_scale_growth_interval", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.loss_scale_growth_interval; }, "an integer")},
      {"optim.lr", field<float>([](PretrainConfig& c) -> float& { return c.lr; }, "a number")},
      {"optim.min_lr_ratio", field<float>([](PretrainConfig& c) -> float& { return c.min_lr_ratio; }, "a number")},
      {"optim.warmup_steps", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.warmup_steps; }, "an integer")},
      {"optim.weight_decay", field<float>([](PretrainConfig& c) -> float& { return c.weight_decay; }, "a number")},
      {"optim.beta1", field<float>([](PretrainConfig& c) -> float& { return c.beta1; }, "a number")},
      {"optim.beta2", field<float>([](PretrainConfig& c) -> float& { return c.beta2; }, "a number")},
      {"optim.eps", field<float>([](PretrainConfig& c) -> float& { return c.eps; }, "a number")},
      {"optim.grad_clip", field<float>([](PretrainConfig& c) -> float& { return c.grad_clip; }, "a number")},
      {"eval.interval", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.eval_interval; }, "an integer")},
      {"eval.batches", field<int>([](PretrainConfig& c) -> int& { return c.eval_batches; }, "an integer")},
      {"checkpoint.interval", field<int64_t>([](PretrainConfig& c) -> int64_t& { return c.checkpoint_interval; }, "an integer")},
      {"dist.dp", field<int>([](PretrainConfig& c) -> int& { return c.dp; }, "an integer (0: all ranks)")},
      {"dist.timeout_s", field<double>([](PretrainConfig& c) -> double& { return c.timeout_s; }, "a number of seconds")},
      {"dist.zero", field<int>([](PretrainConfig& c) -> int& { return c.zero; }, "an integer 0..3")},
      {"dist.overlap", field<bool>([](PretrainConfig& c) -> bool& { return c.overlap; }, "true or false")},
      {"checkpoint.keep", field<int>([](PretrainConfig& c) -> int& { return c.keep_checkpoints; }, "an integer")},
      {"run.dir", field<std::string>([](PretrainConfig& c) -> std::string& { return c.run_dir; }, "a directory path")},
      {"run.peak_gflops", field<double>([](PretrainConfig& c) -> double& { return c.peak_gflops; }, "a number")},
  };
  return k;
}

}  // namespace

LossScalerConfig PretrainConfig::loss_scaler_config() const {
  LossScalerConfig ls;
  ls.init_scale = loss_scale;
  ls.growth_interval = loss_scale_growth_interval;
  return ls;
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
  if (auto p = tbl["model"]["preset"]) c.model_preset = get_as<std::string>(*p.node(), source + ": model.preset", "a preset name");
  c.model = ModelConfig::preset(c.model_preset);

  toml_config::apply_keys(c, tbl, source, keys(), {"model.preset"});
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
  precision_from_name(precision, "train.precision");
  try {
    loss_scaler_config().validate();
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("train.") + e.what());
  }
  positive(std::isfinite(lr) && lr > 0, "optim.lr", "must be a finite number > 0");
  positive(min_lr_ratio >= 0 && min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]");
  positive(warmup_steps >= 0 && warmup_steps <= total_steps(), "optim.warmup_steps", "must be in [0, total steps]");
  positive(weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  positive(beta1 >= 0 && beta1 < 1, "optim.beta1", "must be in [0, 1)");
  positive(beta2 >= 0 && beta2 < 1, "optim.beta2", "must be in [0, 1)");
  positive(eps > 0, "optim.eps", "must be > 0");
  positive(grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 disables clipping)");
  positive(eval_interval >= 0, "eval.interval", "must be >= 0");
  positive(eval_batches >= 1, "eval.batches", "must be >= 1");
  positive(checkpoint_interval >= 0, "checkpoint.interval", "must be >= 0");
  positive(keep_checkpoints >= 0, "checkpoint.keep", "must be >= 0 (0 keeps all)");
  positive(dp >= 0, "dist.dp", "must be >= 0 (0: every rank of the job; got " + std::to_string(dp) + ")");
  positive(timeout_s >= 0, "dist.timeout_s", "must be >= 0 (0: no watchdog)");
  positive(zero >= 0 && zero <= 3, "dist.zero", "must be 0, 1, 2 or 3 (got " + std::to_string(zero) + ")");
  positive(!run_dir.empty(), "run.dir", "must not be empty");
  positive(!dataset.empty(), "data.dataset", "must not be empty");
  positive(peak_gflops >= 0, "run.peak_gflops", "must be >= 0");
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
                                {"rope_theta", static_cast<double>(model.rope_theta)}});
  t.insert("data", toml::table{{"dataset", dataset}, {"mix", mix}});
  t.insert("train", toml::table{{"micro_batch", micro_batch},
                                {"seq_len", seq_len},
                                {"grad_accum", grad_accum},
                                {"steps", total_steps()},
                                {"tokens", tokens},
                                {"seed", static_cast<int64_t>(seed)},
                                {"threads", threads},
                                {"recompute", recompute},
                                {"precision", precision},
                                {"loss_scale", static_cast<double>(loss_scale)},
                                {"loss_scale_growth_interval", loss_scale_growth_interval}});
  t.insert("optim", toml::table{{"lr", static_cast<double>(lr)},
                                {"min_lr_ratio", static_cast<double>(min_lr_ratio)},
                                {"warmup_steps", warmup_steps},
                                {"weight_decay", static_cast<double>(weight_decay)},
                                {"beta1", static_cast<double>(beta1)},
                                {"beta2", static_cast<double>(beta2)},
                                {"eps", static_cast<double>(eps)},
                                {"grad_clip", static_cast<double>(grad_clip)}});
  t.insert("eval", toml::table{{"interval", eval_interval}, {"batches", eval_batches}});
  t.insert("checkpoint", toml::table{{"interval", checkpoint_interval}, {"keep", keep_checkpoints}});
  t.insert("dist", toml::table{{"zero", zero}, {"dp", dp}, {"timeout_s", timeout_s}, {"overlap", overlap}});
  t.insert("run", toml::table{{"dir", run_dir}, {"peak_gflops", peak_gflops}});
  std::ostringstream os;
  os << t << "\n";
  return os.str();
}

}  // namespace teddy
