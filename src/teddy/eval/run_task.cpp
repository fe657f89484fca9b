// One entry for every task: `teddy eval` and evaluation during training both come here.
#include <algorithm>

#include "teddy/core/error.h"
#include "teddy/eval/tasks.h"

namespace teddy {

EvalOptions eval_options(const EvalTaskConfig& t) {
  EvalOptions eo;
  eo.shots = t.shots;
  eo.limit = static_cast<size_t>(t.limit);
  eo.fewshot_path = t.fewshot;
  eo.loglik.max_batch = t.batch_size;
  eo.max_new_tokens = t.max_tokens;
  eo.samples_per_task = t.samples_per_task;
  eo.temperature = static_cast<float>(t.temperature);
  eo.top_p = static_cast<float>(t.top_p);
  eo.seed = t.seed;
  eo.sandbox.wall_seconds = t.timeout;
  eo.sandbox.cpu_seconds = std::max(1, static_cast<int>(t.timeout + 0.999));
  eo.sandbox.address_space_bytes = static_cast<size_t>(t.memory_mb) << 20;
  eo.text_field = t.text_field;
  eo.cot = t.task == "gsm8k_cot";
  return eo;
}

EvalResult run_eval_task(Model& m, const Tokenizer& tok, const EvalTaskConfig& t, const EvalOptions& o) {
  if (t.task == "mmlu") return eval_mmlu(m, tok, t.data, o);
  if (t.task == "arc_challenge") return eval_arc(m, tok, t.data, o);
  if (t.task == "gsm8k" || t.task == "gsm8k_cot") return eval_gsm8k(m, tok, t.data, o);
  if (t.task == "humaneval") return eval_humaneval(m, tok, t.data, o);
  if (t.task == "perplexity") return eval_perplexity(m, tok, t.data, o);
  std::string names;
  for (const std::string& n : eval_task_names()) names += (names.empty() ? "" : ", ") + n;
  throw ConfigError("eval: unknown task '" + t.task + "' (known: " + names + ")");
}

}  // namespace teddy
