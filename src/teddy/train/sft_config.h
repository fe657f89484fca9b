#pragma once
// `teddy sft` configuration: a TOML file (every key but model.init and data.train
// optional), any key overridable on the command line as section.key=value. The
// resolved config is printed and saved with the run as config.toml. See docs/SFT.md.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/dataset.h"
#include "teddy/data/sft/format.h"
#include "teddy/train/common_config.h"
#include "teddy/train/sft_batches.h"

namespace teddy {

struct SftConfig : CommonConfig {
  // [model]
  std::string init;       // teddy checkpoint directory, or a run directory (its newest intact checkpoint)
  std::string tokenizer;  // default: tokenizer.json of the init checkpoint's run directory
  // [data]
  std::string train_path;          // JSONL
  std::string val_path;            // JSONL; empty: hold out val_fraction of train
  double val_fraction = 0.05;
  SftFormat format = SftFormat::auto_detect;
  bool skip_bad = false;
  bool train_on_inputs = false;
  // [template]: a named template; any of its strings may be overridden
  ChatTemplate chat_template;
  // [train]
  int micro_batch = 8;
  int seq_len = 256;
  int grad_accum = 1;
  int64_t steps = 0;     // optimizer steps; 0: derived from epochs
  double epochs = 3;     // passes over the training examples (when steps = 0)
  SftBatching batching = SftBatching::pack;
  SftTruncation truncation = SftTruncation::right;
  uint64_t seed = 1337;
  int threads = 0;
  // precision, loss_scale, loss_scale_growth_interval: CommonConfig (common_config.h)
  // [optim] [eval] [checkpoint] [dist] [run]: CommonConfig (common_config.h), with
  // SFT's defaults: lr 1e-4, warmup_steps 10, weight_decay 0, eval.batches 0 (the
  // whole validation split), checkpoint.keep 2, run.dir runs/sft.
  SftConfig();

  // Not a key: the data-parallel ranks of this run, set by the SftTrainer from the
  // job's layout. A step draws micro_batch x grad_accum rows on every rank.
  int data_parallel = 1;

  int rows_per_step() const { return micro_batch * grad_accum * data_parallel; }  // the global batch
  // steps, or ceil(epochs * rows_per_epoch / rows_per_step).
  int64_t total_steps(size_t rows_per_epoch) const;
  SftDatasetOptions dataset_options() const { return {seq_len, truncation, train_on_inputs}; }

  // Parses `toml_text` (from `source` for messages), then applies overrides
  // ("section.key=value", value in TOML syntax; bare words are strings). Throws
  // ConfigError naming the file and key (unknown keys included).
  static SftConfig parse(const std::string& toml_text, const std::string& source,
                         const std::vector<std::string>& overrides = {});
  static SftConfig load(const std::string& path, const std::vector<std::string>& overrides = {});
  void validate() const;  // throws ConfigError naming the key
  // The resolved config; with rows_per_epoch > 0, train.steps is the derived count.
  std::string to_toml(size_t rows_per_epoch = 0) const;
};

}  // namespace teddy
