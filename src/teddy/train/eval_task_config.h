#pragma once
// Benchmark tasks evaluated during training: the [eval.<task>] tables of `teddy
// pretrain` and `teddy sft` configs (docs/EVAL.md). Each table names one of `teddy
// eval`'s tasks and carries the settings its flags would (data, shots, limit, ...), so
// an evaluation inside a run and `teddy eval` of the checkpoint at that step score
// the same way. train/ holds only the settings; eval/ runs them (eval/ builds on
// train/, not the other way round), through the Trainer's TaskEvaluator.
#include <cstdint>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace teddy {

struct EvalTaskConfig {
  std::string task;          // the table's name: mmlu, arc_challenge, gsm8k, gsm8k_cot, humaneval, perplexity
  std::string data;          // required: the task's data as `teddy eval --data` takes it
  int shots = -1;            // -1: the task's default
  int64_t limit = 0;         // score only the first N (MMLU: per subject); 0: all
  std::string fewshot;       // --fewshot
  int batch_size = 16;       // --batch-size
  int max_tokens = -1;       // --max-tokens; -1: the task's default
  int samples_per_task = 1;  // HumanEval --samples-per-task
  double temperature = 0;    // generation; 0 = greedy
  double top_p = 1;
  uint64_t seed = 1234;
  double timeout = 10;       // HumanEval: seconds per program
  int64_t memory_mb = 1024;  // HumanEval: address space per program
  std::string text_field = "text";  // perplexity on JSONL
};

// The task names `teddy eval` and [eval.<task>] accept, in display order.
const std::vector<std::string>& benchmark_task_names();

// Reads the table [eval.<name>] (`where` = "eval.<name>" for messages): ConfigError
// for an unknown task name (listing the known ones), an unknown key (listing the
// known keys) or a value of the wrong type, each naming eval.<name>.<key>.
EvalTaskConfig eval_task_from_toml(const std::string& name, const toml::node& node, const std::string& where);

// ConfigError "eval.<task>.<key>: rule" for the first value that breaks a rule;
// the data path must exist.
void validate_eval_task(const EvalTaskConfig& t);

// The table as the run's resolved config.toml writes it.
toml::table eval_task_toml(const EvalTaskConfig& t);

}  // namespace teddy
