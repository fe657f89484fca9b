#include "teddy/eval/training_eval.h"

#include <chrono>
#include <filesystem>
#include <memory>

namespace teddy {

TaskScores task_scores(const EvalResult& r, double seconds) {
  TaskScores s;
  s.task = r.task;
  s.n = static_cast<int64_t>(r.n);
  for (const auto& [name, v] : r.metrics.items())
    if (v.is_number()) s.metrics.emplace_back(name, v.get<double>());
  s.seconds = seconds;
  return s;
}

TaskEvaluator make_task_evaluator(std::vector<EvalTaskConfig> tasks, std::string run_dir) {
  auto tok = std::make_shared<std::unique_ptr<Tokenizer>>();
  return [tasks = std::move(tasks), run_dir = std::move(run_dir), tok](Model& m, int64_t) {
    if (!*tok) *tok = std::make_unique<Tokenizer>(Tokenizer::load((std::filesystem::path(run_dir) / "tokenizer.json").string()));
    std::vector<TaskScores> out;
    for (const EvalTaskConfig& t : tasks) {
      const auto t0 = std::chrono::steady_clock::now();
      EvalResult r = run_eval_task(m, **tok, t, eval_options(t));
      r.task = t.task;  // gsm8k_cot reports under its own name
      out.push_back(task_scores(r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
    }
    return out;
  };
}

}  // namespace teddy
