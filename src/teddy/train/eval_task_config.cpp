#include "teddy/train/eval_task_config.h"

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include "teddy/core/error.h"
#include "teddy/train/toml_config.h"

namespace teddy {

const std::vector<std::string>& benchmark_task_names() {
  static const std::vector<std::string> names{"mmlu", "arc_challenge", "gsm8k", "gsm8k_cot", "humaneval", "perplexity"};
  return names;
}

namespace {

using Setter = std::function<void(EvalTaskConfig&, const toml::node&, const std::string&)>;

template <class T>
Setter field(T EvalTaskConfig::*member, const char* want) {
  return [member, want](EvalTaskConfig& t, const toml::node& n, const std::string& where) {
    t.*member = toml_config::get_as<T>(n, where, want);
  };
}

const std::map<std::string, Setter>& task_keys() {
  static const std::map<std::string, Setter> k{
      {"data", field(&EvalTaskConfig::data, "a path (file or folder)")},
      {"shots", field(&EvalTaskConfig::shots, "an integer >= 0")},
      {"limit", field(&EvalTaskConfig::limit, "an integer >= 0 (0: all)")},
      {"fewshot", field(&EvalTaskConfig::fewshot, "a path")},
      {"batch_size", field(&EvalTaskConfig::batch_size, "an integer >= 1")},
      {"max_tokens", field(&EvalTaskConfig::max_tokens, "an integer >= 1")},
      {"samples_per_task", field(&EvalTaskConfig::samples_per_task, "an integer >= 1")},
      {"temperature", field(&EvalTaskConfig::temperature, "a number >= 0")},
      {"top_p", field(&EvalTaskConfig::top_p, "a number in (0, 1]")},
      {"seed", field(&EvalTaskConfig::seed, "an integer")},
      {"timeout", field(&EvalTaskConfig::timeout, "a number of seconds > 0")},
      {"memory_mb", field(&EvalTaskConfig::memory_mb, "an integer >= 1 (MiB)")},
      {"text_field", field(&EvalTaskConfig::text_field, "a string")},
  };
  return k;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

EvalTaskConfig eval_task_from_toml(const std::string& name, const toml::node& node, const std::string& where) {
  bool known = false;
  for (const std::string& n : benchmark_task_names()) known = known || n == name;
  if (!known)
    throw ConfigError(where + ": unknown evaluation task \"" + name + "\" (known: " + joined(benchmark_task_names()) +
                      "; the validation keys of [eval] are interval, batches and task_interval)");
  const toml::table* tbl = node.as_table();
  if (!tbl) throw ConfigError(where + ": expected a table [eval." + name + "] with at least data = \"PATH\"");
  EvalTaskConfig t;
  t.task = name;
  for (auto&& [k, v] : *tbl) {
    const std::string key(k.str());
    const auto it = task_keys().find(key);
    if (it == task_keys().end()) {
      std::vector<std::string> keys;
      for (const auto& [kk, _] : task_keys()) keys.push_back(kk);
      throw ConfigError(where + "." + key + ": unknown key (known: " + joined(keys) + ")");
    }
    it->second(t, v, where + "." + key);
  }
  return t;
}

void validate_eval_task(const EvalTaskConfig& t) {
  const std::string w = "eval." + t.task + ".";
  auto check = [&](bool ok, const char* key, const std::string& rule) {
    if (!ok) throw ConfigError(w + key + ": " + rule);
  };
  check(!t.data.empty(), "data", "required: the task's data (as `teddy eval --data` takes it)");
  std::error_code ec;
  check(std::filesystem::exists(t.data, ec), "data", t.data + ": no such file or directory");
  check(t.fewshot.empty() || std::filesystem::exists(t.fewshot, ec), "fewshot", t.fewshot + ": no such file or directory");
  check(t.shots >= -1, "shots", "must be >= 0");
  check(t.limit >= 0, "limit", "must be >= 0 (0: all)");
  check(t.batch_size >= 1, "batch_size", "must be >= 1");
  check(t.max_tokens == -1 || t.max_tokens >= 1, "max_tokens", "must be >= 1");
  check(t.samples_per_task >= 1, "samples_per_task", "must be >= 1");
  check(std::isfinite(t.temperature) && t.temperature >= 0, "temperature", "must be >= 0");
  check(t.top_p > 0 && t.top_p <= 1, "top_p", "must be in (0, 1]");
  check(std::isfinite(t.timeout) && t.timeout > 0, "timeout", "must be > 0 seconds");
  check(t.memory_mb >= 1, "memory_mb", "must be >= 1");
}

toml::table eval_task_toml(const EvalTaskConfig& t) {
  toml::table out{{"data", t.data}, {"limit", t.limit}};
  if (t.shots >= 0) out.insert("shots", t.shots);
  if (!t.fewshot.empty()) out.insert("fewshot", t.fewshot);
  out.insert("batch_size", t.batch_size);
  if (t.max_tokens > 0) out.insert("max_tokens", t.max_tokens);
  out.insert("samples_per_task", t.samples_per_task);
  out.insert("temperature", t.temperature);
  out.insert("top_p", t.top_p);
  out.insert("seed", static_cast<int64_t>(t.seed));
  out.insert("timeout", t.timeout);
  out.insert("memory_mb", t.memory_mb);
  out.insert("text_field", t.text_field);
  return out;
}

}  // namespace teddy
