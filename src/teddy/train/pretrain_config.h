#pragma once
// `teddy pretrain` configuration: a TOML file (every key optional, defaults below),
// any key overridable on the command line as section.key=value. The resolved
// config (defaults filled in) is printed and saved with the run as config.toml.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/model/config.h"
#include "teddy/train/common_config.h"

namespace teddy {

struct PretrainConfig : CommonConfig {
  // [model]: a preset, optionally with sizes overridden. vocab_size comes from the dataset.
  std::string model_preset = "gpt2-mini";
  ModelConfig model;              // resolved (preset + overrides + dataset vocabulary)
  // [data]
  std::string dataset = "data/default";  // a directory made by `teddy data prepare`
  std::string mix;                       // "prose=0.6,code=0.3"; empty: manifest weights
  // [train]
  int micro_batch = 8;
  int seq_len = 128;
  int grad_accum = 1;
  int64_t steps = 300;    // optimizer steps; 0 with tokens > 0: derived from tokens
  int64_t tokens = 0;     // token budget (overrides steps when > 0)
  uint64_t seed = 1337;
  int threads = 0;        // 0: all cores (OMP_NUM_THREADS if set)
  std::string recompute = "none";  // activation recomputation: none | attention | block
  // precision, loss_scale, loss_scale_growth_interval: CommonConfig (common_config.h)
  // [optim] [eval] [checkpoint] [dist] [run]: CommonConfig (common_config.h), with
  // pretraining's defaults: lr 1e-3, warmup_steps 20, weight_decay 0.1,
  // eval.batches 8, checkpoint.keep 3, run.dir runs/pretrain.
  PretrainConfig();

  // Not a key: the data-parallel ranks of this run, set by the Pretrainer from the
  // job's layout before finalize(). A step consumes tokens_per_step() on every rank.
  int data_parallel = 1;

  int64_t tokens_per_step() const { return static_cast<int64_t>(micro_batch) * seq_len * grad_accum; }  // per rank
  int64_t global_tokens_per_step() const { return tokens_per_step() * data_parallel; }
  int64_t total_steps() const;  // steps, or ceil(tokens / global_tokens_per_step)

  // Parses `toml_text` (from `source` for messages), then applies `overrides`
  // ("section.key=value", value in TOML syntax; bare words are taken as strings).
  // Throws ConfigError naming the file, the key and the rule (unknown keys included).
  static PretrainConfig parse(const std::string& toml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});
  static PretrainConfig load(const std::string& path, const std::vector<std::string>& overrides = {});
  // Sets model.vocab_size/padded_vocab_size from the tokenizer and validates everything.
  void finalize(int vocab_size);
  void validate() const;  // throws ConfigError naming the key
  std::string to_toml() const;  // the resolved config
};

}  // namespace teddy
