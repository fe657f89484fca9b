// HumanEval: complete the function, run the task's check(entry_point) in the
// sandbox, pass@k by the unbiased estimator over n samples per task.
#include <map>

#include "teddy/core/error.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/generate_until.h"
#include "teddy/eval/jsonl.h"
#include "teddy/eval/metrics.h"
#include "teddy/eval/prompts.h"
#include "teddy/eval/tasks.h"

namespace teddy {

nlohmann::ordered_json humaneval_pass_at(const std::vector<std::pair<int64_t, int64_t>>& counts) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (counts.empty()) return out;
  int64_t min_n = counts.front().first;
  for (const auto& [n, c] : counts) min_n = std::min(min_n, n);
  for (int64_t k : {1, 10, 100}) {
    if (k > min_n) break;  // HumanEval's harness: only where every task has k samples
    double s = 0;
    for (const auto& [n, c] : counts) s += pass_at_k(n, c, k);
    out["pass@" + std::to_string(k)] = s / static_cast<double>(counts.size());
  }
  return out;
}

namespace {

struct Scored {
  std::vector<std::pair<int64_t, int64_t>> counts;  // per task: n, c
  std::string isolation;
};

// Runs every task's completions; appends sample records.
Scored run_tasks(const std::vector<const HumanEvalTask*>& tasks, const std::vector<std::vector<std::string>>& completions,
                 const EvalOptions& o, EvalResult& r, size_t& done, size_t total) {
  Scored s;
  for (size_t t = 0; t < tasks.size(); ++t) {
    int64_t c = 0;
    for (const std::string& comp : completions[t]) {
      const SandboxResult sr = run_python_sandboxed(humaneval_program(*tasks[t], comp), o.sandbox);
      if (s.isolation.empty()) s.isolation = sr.isolation;
      c += sr.passed();
      nlohmann::ordered_json j;
      j["task_id"] = tasks[t]->task_id;
      j["completion"] = comp;
      j["passed"] = sr.passed();
      j["result"] = sr.passed() ? "passed" : sr.timed_out ? "timed out" : sr.exited ? "failed (exit " + std::to_string(sr.exit_code) + ")"
                                                                                    : "killed by signal " + std::to_string(sr.signal);
      j["seconds"] = sr.seconds;
      if (!sr.passed()) j["output"] = sr.output;
      r.samples.push_back(std::move(j));
      ++done;
      if (o.progress) o.progress(done, total);
    }
    s.counts.push_back({static_cast<int64_t>(completions[t].size()), c});
  }
  return s;
}

void finish(EvalResult& r, const Scored& s, const EvalOptions& o) {
  r.n = s.counts.size();
  r.metrics = humaneval_pass_at(s.counts);
  int64_t samples = 0;
  for (const auto& [n, c] : s.counts) samples += n;
  r.info["samples"] = samples;
  r.info["sandbox"] = s.isolation;
  r.info["timeout_s"] = o.sandbox.wall_seconds;
  r.info["chance"] = 0.0;
}

}  // namespace

EvalResult eval_humaneval(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o) {
  if (o.shots > 0) throw ConfigError("--shots: HumanEval is zero-shot (the prompt is the function to complete)");
  if (o.samples_per_task < 1) throw ConfigError("--samples-per-task: must be at least 1");
  const std::vector<HumanEvalTask> all = read_humaneval(data);
  std::vector<const HumanEvalTask*> tasks;
  for (size_t i = 0; i < all.size() && (o.limit == 0 || i < o.limit); ++i) tasks.push_back(&all[i]);
  const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : 512;
  const size_t total = tasks.size() * static_cast<size_t>(o.samples_per_task);
  size_t done = 0;
  std::vector<std::vector<std::string>> comps(tasks.size());
  EvalResult r;
  r.task = "humaneval";
  // Generate, then run: two bars' worth of work, counted as one (generation first).
  for (size_t t = 0; t < tasks.size(); ++t)
    for (int k = 0; k < o.samples_per_task; ++k) {
      SamplingOptions so;
      so.temperature = o.temperature;
      so.top_p = o.top_p;
      so.seed = o.seed + static_cast<uint64_t>(k);  // n different draws per task
      comps[t].push_back(generate_until(m, tok, tasks[t]->prompt, humaneval_stop_sequences(), max_new, so).text);
      if (o.progress) o.progress(++done, 2 * total);
    }
  const Scored s = run_tasks(tasks, comps, o, r, done, 2 * total);
  finish(r, s, o);
  r.info["samples_per_task"] = o.samples_per_task;
  if (o.samples_per_task > 1 && o.temperature == 0.0f)
    r.info["note"] = "temperature 0: the samples of a task are the same greedy completion (give --temperature)";
  r.info["temperature"] = o.temperature;
  r.info["max_new_tokens"] = max_new;
  return r;
}

EvalResult score_humaneval_predictions(const std::string& data, const std::string& predictions, const EvalOptions& o) {
  const std::vector<HumanEvalTask> all = read_humaneval(data);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < all.size(); ++i) index.emplace(all[i].task_id, i);
  std::vector<std::vector<std::string>> by_task(all.size());
  for (const JsonlRow& row : read_jsonl(predictions)) {
    const std::string id = require_string(row, predictions, "task_id");
    auto it = index.find(id);
    if (it == index.end()) row_error(predictions, row.line, "task_id \"" + id + "\" is not a task of " + data);
    by_task[it->second].push_back(require_string(row, predictions, "completion"));
  }
  std::vector<const HumanEvalTask*> tasks;
  std::vector<std::vector<std::string>> comps;
  size_t total = 0;
  for (size_t i = 0; i < all.size() && (o.limit == 0 || i < o.limit); ++i) {
    if (by_task[i].empty())
      throw FormatError(predictions + ": task " + all[i].task_id + " of " + data + " has no completion (HumanEval scores every task)");
    tasks.push_back(&all[i]);
    comps.push_back(by_task[i]);
    total += by_task[i].size();
  }
  EvalResult r;
  r.task = "humaneval";
  size_t done = 0;
  const Scored s = run_tasks(tasks, comps, o, r, done, total);
  finish(r, s, o);
  r.info["predictions"] = predictions;
  return r;
}

}  // namespace teddy
