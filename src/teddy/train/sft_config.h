#pragma once
// `teddy sft` configuration: a TOML file (every key but model.init and data.train
// optional), any key overridable on the command line as section.key=value. The
// resolved config is printed and saved with the run as config.toml. See docs/SFT.md.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/data/chat_template.h"
#include "teddy/data/sft_dataset.h"
#include "teddy/data/sft_format.h"
#include "teddy/train/sft_batches.h"

namespace teddy {

struct SftConfig {
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
  // [optim]
  float lr = 1e-4f;
  float min_lr_ratio = 0.1f;
  int64_t warmup_steps = 10;
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float grad_clip = 1.0f;
  // [eval]
  int64_t eval_interval = 50;  // steps; 0: only at the start and the end
  int eval_batches = 0;        // validation micro-batches per evaluation; 0: the whole split
  // [checkpoint]
  int64_t checkpoint_interval = 100;
  int keep_checkpoints = 2;
  // [run]
  std::string run_dir = "runs/sft";
  double peak_gflops = 0;

  int rows_per_step() const { return micro_batch * grad_accum; }
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
