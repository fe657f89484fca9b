#include "teddy/train/common_config.h"

#include <cmath>

#include "teddy/core/error.h"
#include "teddy/core/stop_signal.h"

namespace teddy {

namespace {

void check(bool ok, const char* key, const std::string& rule) {
  if (!ok) throw ConfigError(std::string(key) + ": " + rule);
}

}  // namespace

void validate_common(const CommonConfig& c, const CommonRules& rules) {
  c.precision_mode();
  c.gemm_backend();
  try {
    c.loss_scaler_config().validate();
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("train.") + e.what());
  }
  check(std::isfinite(c.lr) && c.lr > 0, "optim.lr", "must be a finite number > 0");
  check(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]");
  if (rules.total_steps)
    check(c.warmup_steps >= 0 && c.warmup_steps <= *rules.total_steps, "optim.warmup_steps",
          "must be in [0, total steps] (got " + std::to_string(c.warmup_steps) + ", total steps " +
              std::to_string(*rules.total_steps) + ")");
  else
    check(c.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0 (got " + std::to_string(c.warmup_steps) + ")");
  check(c.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  check(c.beta1 >= 0 && c.beta1 < 1, "optim.beta1", "must be in [0, 1)");
  check(c.beta2 >= 0 && c.beta2 < 1, "optim.beta2", "must be in [0, 1)");
  check(c.eps > 0, "optim.eps", "must be > 0");
  check(c.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 disables clipping)");
  check(c.eval_interval >= 0, "eval.interval", "must be >= 0");
  if (rules.eval_batches_zero_is_all)
    check(c.eval_batches >= 0, "eval.batches", "must be >= 0 (0: the whole validation split)");
  else
    check(c.eval_batches >= 1, "eval.batches", "must be >= 1");
  check(c.eval_task_interval >= -1, "eval.task_interval", "must be >= 0 (0: only at the end)");
  for (const EvalTaskConfig& t : c.eval_tasks) validate_eval_task(t);
  check(c.checkpoint_interval >= 0, "checkpoint.interval", "must be >= 0");
  check(c.keep_checkpoints >= 0, "checkpoint.keep", "must be >= 0 (0 keeps all)");
  check(c.dp >= 0, "dist.dp", "must be >= 0 (0: every rank of the job; got " + std::to_string(c.dp) + ")");
  check(c.timeout_s >= 0, "dist.timeout_s", "must be >= 0 (0: no watchdog)");
  check(c.zero >= 0 && c.zero <= 3, "dist.zero", "must be 0, 1, 2 or 3 (got " + std::to_string(c.zero) + ")");
  check(!c.run_dir.empty(), "run.dir", "must not be empty");
  check(c.peak_gflops >= 0, "run.peak_gflops", "must be >= 0");
  c.save_on_signals();
  if (c.lora_section) c.lora.validate_values();
}

std::vector<int> CommonConfig::save_on_signals() const {
  std::vector<int> out;
  for (const std::string& n : save_on) {
    const int s = stop_signal_from_name(n);
    if (s == 0)
      throw ConfigError("run.save_on: unknown signal \"" + n + "\" (expected TERM, INT, USR1, USR2, HUP, QUIT or XCPU)");
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> lora_targets_from_toml(const toml::node& n, const std::string& where) {
  std::vector<std::string> out;
  auto add = [&](std::string s) {
    const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    if (b == std::string::npos) throw ConfigError(where + ": an empty target name");
    out.push_back(s.substr(b, e - b + 1));
  };
  if (const toml::array* a = n.as_array()) {
    for (const toml::node& x : *a) {
      const auto v = x.value<std::string>();
      if (!v) throw ConfigError(where + ": expected an array of strings (module names)");
      add(*v);
    }
  } else if (const auto v = n.value<std::string>()) {
    size_t start = 0;
    while (true) {
      const size_t comma = v->find(',', start);
      add(v->substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else {
    throw ConfigError(where + ": expected an array of strings or a comma-separated string");
  }
  if (out.empty()) throw ConfigError(where + ": no targets (use \"all\" for every linear)");
  return out;
}

void insert_common_toml(toml::table& t, const CommonConfig& c) {
  if (!t.contains("train")) t.insert("train", toml::table{});
  toml::table& train = *t["train"].as_table();
  train.insert_or_assign("precision", c.precision);
  train.insert_or_assign("gemm", c.gemm);
  train.insert_or_assign("loss_scale", static_cast<double>(c.loss_scale));
  train.insert_or_assign("loss_scale_growth_interval", c.loss_scale_growth_interval);
  t.insert("optim", toml::table{{"lr", static_cast<double>(c.lr)},
                                {"min_lr_ratio", static_cast<double>(c.min_lr_ratio)},
                                {"warmup_steps", c.warmup_steps},
                                {"weight_decay", static_cast<double>(c.weight_decay)},
                                {"beta1", static_cast<double>(c.beta1)},
                                {"beta2", static_cast<double>(c.beta2)},
                                {"eps", static_cast<double>(c.eps)},
                                {"grad_clip", static_cast<double>(c.grad_clip)}});
  toml::table eval{{"interval", c.eval_interval}, {"batches", c.eval_batches}};
  if (!c.eval_tasks.empty()) {
    eval.insert("task_interval", c.task_interval());
    for (const EvalTaskConfig& task : c.eval_tasks) eval.insert(task.task, eval_task_toml(task));
  }
  t.insert("eval", std::move(eval));
  t.insert("checkpoint", toml::table{{"interval", c.checkpoint_interval}, {"keep", c.keep_checkpoints}});
  t.insert("dist", toml::table{{"zero", c.zero}, {"dp", c.dp}, {"timeout_s", c.timeout_s}, {"overlap", c.overlap}});
  toml::array save_on;
  for (const std::string& n : c.save_on) save_on.push_back(n);
  t.insert("run", toml::table{{"dir", c.run_dir}, {"peak_gflops", c.peak_gflops}, {"save_on", save_on}, {"memory_check", c.memory_check}});
  t.insert("log", toml::table{{"tensorboard", c.tensorboard}});
  if (c.lora_section) {
    toml::array targets;
    for (const std::string& x : c.lora.targets) targets.push_back(x);
    if (targets.empty()) targets.push_back("all");
    t.insert("lora", toml::table{{"r", c.lora.r},
                                 {"alpha", static_cast<double>(c.lora.alpha)},
                                 {"dropout", static_cast<double>(c.lora.dropout)},
                                 {"targets", targets},
                                 {"rslora", c.lora.rslora},
                                 {"quantize", c.lora.quantize},
                                 {"compute", c.lora.compute}});
  }
}

AdamWConfig CommonConfig::adamw() const {
  AdamWConfig ac;
  ac.lr = lr;
  ac.beta1 = beta1;
  ac.beta2 = beta2;
  ac.eps = eps;
  ac.weight_decay = weight_decay;
  ac.validate();
  return ac;
}

Precision CommonConfig::precision_mode() const { return precision_from_name(precision, "train.precision"); }

const kernels::Backend& CommonConfig::gemm_backend() const {
  const kernels::Gemm g = kernels::gemm_from_name(gemm, "train.gemm");
  const DType p = precision_dtype(precision_mode());
  if (lora_section && lora.enabled())
    return kernels::lora_gemm_backend(g, p, lora.compute, lora.quantize != "none", "lora.compute");
  return kernels::gemm_backend(g, p);
}

LossScalerConfig CommonConfig::loss_scaler_config() const {
  LossScalerConfig ls;
  ls.init_scale = loss_scale;
  ls.growth_interval = loss_scale_growth_interval;
  return ls;
}

LrSchedule CommonConfig::lr_schedule(int64_t total_steps) const {
  LrSchedule s;
  s.lr = lr;
  s.warmup_steps = warmup_steps;
  s.total_steps = total_steps;
  s.min_lr_ratio = min_lr_ratio;
  s.validate();
  return s;
}

dist::ParallelLayout CommonConfig::layout(int world_size) const {
  dist::ParallelLayout l;
  l.dp = dp > 0 ? dp : world_size;
  l.zero = zero;
  l.validate(world_size);
  return l;
}

}  // namespace teddy
