#pragma once
// A finished or running training run as `teddy report` reads it: its metrics.jsonl
// (one object per step, one per validation, one per benchmark task evaluated) and its
// config.toml.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace teddy::report {

struct StepRow {
  int64_t step = 0;
  int64_t tokens = 0;  // seen since step 0 (SFT: row positions)
  double loss = 0, lr = 0, grad_norm = 0;  // grad_norm NaN: an fp16 overflow step (null in the file)
  double tokens_per_s = 0, mfu = 0, step_s = 0;
  std::optional<double> peak_rss_bytes;
  std::optional<double> loss_scale;
  int64_t skipped_steps = 0;
};

struct ValRow {
  int64_t step = 0;
  int64_t tokens = 0;  // the tokens seen at that step (0 before the first step)
  double val_loss = 0;
};

// A benchmark task's scores at a step ([eval.<task>] during training).
struct EvalRow {
  int64_t step = 0;
  int64_t tokens = 0;
  std::string task;
  std::map<std::string, double> metrics;  // lm-eval's names: acc, acc_stderr, exact_match, ...
};

struct RunLog {
  std::string dir;
  std::string label;  // the directory's name (made unique among the runs compared)
  std::vector<StepRow> steps;
  std::vector<ValRow> vals;
  std::vector<EvalRow> evals;  // in file order
  // config.toml flattened: "section.key" -> the value as TOML writes it.
  std::map<std::string, std::string> config;
  std::string model;           // "gpt2-tiny", "llama, 12 layers x 768", or the SFT base
  std::optional<int64_t> params;  // from the model config, when config.toml gives one
  std::vector<std::string> warnings;  // e.g. a torn last line skipped

  double wall_s() const;  // sum of step_s
  std::optional<double> best_val() const;
  int64_t best_val_step() const;
};

// Reads DIR/metrics.jsonl and DIR/config.toml. Throws Error naming the path: DIR is not
// a run (no metrics.jsonl), the metrics hold no step, or a line other than the last is
// not a JSON object with "step". A cut last line (a killed run's) is skipped with a
// warning in RunLog::warnings.
RunLog read_run(const std::string& dir);

}  // namespace teddy::report
