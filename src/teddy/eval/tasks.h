#pragma once
// `teddy eval`'s tasks: MMLU, ARC-Challenge, GSM8K, HumanEval and perplexity, each
// reading its published data, rendering lm-evaluation-harness's prompts, scoring with
// the model and reporting lm-eval's metric names. The *_predictions functions score
// completions produced elsewhere (no model).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "teddy/eval/loglikelihood.h"
#include "teddy/eval/sandbox.h"
#include "teddy/model/model.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/train/eval_task_config.h"

namespace teddy {

struct EvalOptions {
  int shots = -1;            // -1: the task's default (MMLU 5, ARC 0, GSM8K 8, HumanEval 0)
  size_t limit = 0;          // score only the first N (MMLU: per subject, as lm-eval); 0: all
  std::string fewshot_path;  // the few-shot split; "": MMLU's dev/ beside the data, else
                             // the first K rows of the data, which are then not scored
  LoglikOptions loglik;
  int max_new_tokens = -1;   // -1: GSM8K 256, HumanEval 512 (lm-eval's defaults)
  int samples_per_task = 1;  // HumanEval: n completions per task
  float temperature = 0.0f;  // generation; 0 = greedy
  float top_p = 1.0f;
  uint64_t seed = 1234;
  SandboxLimits sandbox;
  std::string text_field = "text";  // perplexity on JSONL
  bool cot = false;                 // GSM8K: lm-eval's gsm8k_cot (the fixed 8 exemplars of Wei et al.)
  std::function<void(size_t done, size_t total)> progress;
};

struct EvalResult {
  std::string task;
  size_t n = 0;                     // samples scored
  nlohmann::ordered_json metrics;   // {"acc": .., "acc_stderr": .., ...}
  nlohmann::ordered_json groups;    // MMLU: {subject: {"n", "acc"}}; else null
  // MMLU: lm-eval's category groups present, {category: {"n", "subjects", "acc" (micro,
  // lm-eval's weight_by_size), "acc_macro" (mean over its subjects)}}; else null.
  nlohmann::ordered_json categories;
  nlohmann::ordered_json info;      // shots, chance level, few-shot source, sandbox isolation ...
  std::vector<nlohmann::ordered_json> samples;  // one record per sample (--log-samples)
};

// The task names `teddy eval` knows, in display order (train/eval_task_config.h's).
const std::vector<std::string>& eval_task_names();

// The options a task's settings mean: `teddy eval`'s flags and an [eval.<task>] table
// go through this one mapping, so both score a model the same way.
EvalOptions eval_options(const EvalTaskConfig& t);

// Runs task `t.task` (one of eval_task_names(); gsm8k_cot is gsm8k with cot) on t.data.
EvalResult run_eval_task(Model& m, const Tokenizer& tok, const EvalTaskConfig& t, const EvalOptions& o);

EvalResult eval_mmlu(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o);
EvalResult eval_arc(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o);
EvalResult eval_gsm8k(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o);
EvalResult eval_humaneval(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o);
EvalResult eval_perplexity(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o);

// Scoring completions made elsewhere. GSM8K rows {"question" or "idx", "completion"}
// (idx: 0-based row of the data file); HumanEval's samples format {"task_id",
// "completion"}, any number per task. Throws FormatError naming the line of a row
// that matches no problem, and when a problem has no completion.
EvalResult score_gsm8k_predictions(const std::string& data, const std::string& predictions, const EvalOptions& o);
EvalResult score_humaneval_predictions(const std::string& data, const std::string& predictions, const EvalOptions& o);

// HumanEval's aggregation: pass@k for k in {1, 10, 100} where every task has at
// least k samples; counts[i] = {n, c} of task i.
nlohmann::ordered_json humaneval_pass_at(const std::vector<std::pair<int64_t, int64_t>>& counts);

}  // namespace teddy
