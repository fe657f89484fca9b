#pragma once
// `teddy pretrain` configuration: a TOML file (every key optional, defaults below),
// any key overridable on the command line as section.key=value. The resolved
// config (defaults filled in) is printed and saved with the run as config.toml.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/model/config.h"
#include "teddy/train/loss_scaler.h"

namespace teddy {

struct PretrainConfig {
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
  std::string precision = "fp32";  // fp32 | bf16 | fp16 (mixed precision, fp32 master weights)
  float loss_scale = 65536.0f;     // fp16: initial dynamic loss scale (a power of two)
  int64_t loss_scale_growth_interval = 1000;  // fp16: clean steps before the scale doubles
  // [optim]
  float lr = 1e-3f;
  float min_lr_ratio = 0.1f;
  int64_t warmup_steps = 20;
  float weight_decay = 0.1f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float grad_clip = 1.0f;
  // [eval]
  int64_t eval_interval = 50;  // steps; 0: only at the end
  int eval_batches = 8;        // validation batches of micro_batch rows each
  // [checkpoint]
  int64_t checkpoint_interval = 100;  // steps; 0: only at the end
  int keep_checkpoints = 3;
  // [dist] (used when launched by mpirun / srun; the world size is the job's)
  int zero = 0;  // ZeRO stage: 0 data parallel, 1 shard optimizer state, 2 + gradients, 3 + parameters
  int dp = 0;    // data-parallel ranks the run expects; 0: every rank of the job (refused if it differs)
  double timeout_s = 600;  // a communication call waiting longer ends the job (a hung peer); 0: never
  bool overlap = true;     // start gradient bucket collectives non-blocking during the backward
  // [run]
  std::string run_dir = "runs/pretrain";
  double peak_gflops = 0;  // MFU denominator; 0: measure the sgemm ceiling at start

  // Not a key: the data-parallel ranks of this run, set by the Pretrainer from its
  // engine before finalize(). A step consumes tokens_per_step() on every rank.
  int data_parallel = 1;

  int64_t tokens_per_step() const { return static_cast<int64_t>(micro_batch) * seq_len * grad_accum; }  // per rank
  int64_t global_tokens_per_step() const { return tokens_per_step() * data_parallel; }
  int64_t total_steps() const;
  LossScalerConfig loss_scaler_config() const;  // from loss_scale, loss_scale_growth_interval  // steps, or ceil(tokens / global_tokens_per_step)

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
