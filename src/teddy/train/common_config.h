#pragma once
// The config sections every training command shares, defined once: [optim] [eval]
// [checkpoint] [run] [dist] [log], and [train]'s precision keys (precision, loss_scale,
// loss_scale_growth_interval). PretrainConfig and SftConfig derive from CommonConfig
// (each sets its own defaults in its constructor), read these keys through
// add_common_keys, check them with validate_common and write them with
// insert_common_toml, so a key, its type, its rule and its message are the same in
// both. The few rules whose wording differs are CommonRules.
#include <cstdint>
#include <optional>
#include <string>
#include <toml++/toml.h>
#include <vector>

#include "teddy/distributed/parallel_layout.h"
#include "teddy/model/model.h"
#include "teddy/model/lora.h"
#include "teddy/train/eval_task_config.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/loss_scaler.h"
#include "teddy/train/optim/lr_schedule.h"
#include "teddy/train/toml_config.h"

namespace teddy {

struct CommonConfig {
  // [train] precision: fp32, or bf16 / fp16 mixed precision (fp32 master weights,
  // gradients and AdamW state; 16-bit matmul weights and saved activations). fp16
  // adds a dynamic loss scale, kept by the step engine on every rank.
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  // [train] gemm: the library of the linear GEMMs: openblas, onednn, or auto (measured,
  // docs/TRAINING_OPTIMIZATIONS.md: bf16 products on oneDNN where native; fp32 on
  // oneDNN only where it has AVX-512 and OpenBLAS runs AVX2 kernels; else openblas).
  // With precision bf16 and a CPU with AVX512_BF16 or AMX, onednn computes the products
  // from bf16 inputs (kernels::gemm_backend).
  std::string gemm = "auto";  // openblas | onednn | auto
  float loss_scale = 65536.0f;     // fp16: initial dynamic loss scale (a power of two)
  int64_t loss_scale_growth_interval = 1000;  // fp16: clean steps before the scale doubles
  // [optim]
  float lr = 1e-3f;
  float min_lr_ratio = 0.1f;
  int64_t warmup_steps = 20;
  float weight_decay = 0.1f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float grad_clip = 1.0f;  // 0 disables clipping
  // [eval]
  int64_t eval_interval = 50;  // steps; 0: only at the end
  int eval_batches = 8;        // validation micro-batches per evaluation
  // Benchmark tasks ([eval.<task>] tables, train/eval_task_config.h), run on rank 0
  // every task_interval steps (-1: eval.interval; 0: only at the end) and at the end.
  std::vector<EvalTaskConfig> eval_tasks;
  int64_t eval_task_interval = -1;
  int64_t task_interval() const { return eval_task_interval < 0 ? eval_interval : eval_task_interval; }
  // [checkpoint]
  int64_t checkpoint_interval = 100;  // steps; 0: only at the end
  int keep_checkpoints = 3;           // 0 keeps all
  // [dist] (used when launched by mpirun / srun; the world size is the job's)
  int zero = 0;  // ZeRO stage: 0 data parallel, 1 shard optimizer state, 2 + gradients, 3 + parameters
  int dp = 0;    // data-parallel ranks the run expects; 0: every rank of the job (refused if it differs)
  double timeout_s = 600;  // a communication call waiting longer ends the job (a hung peer); 0: never
  bool overlap = true;     // start gradient bucket collectives non-blocking during the backward
  // [run]
  std::string run_dir = "runs/train";
  double peak_gflops = 0;  // MFU denominator; 0: the physical peak measured at start (bench/peak_flops.h)
  // [log]
  bool tensorboard = true;  // rank 0 writes <run.dir>/tensorboard/events.out.tfevents.*
  // Signals that end the run at the next step boundary with a checkpoint
  // (core/stop_signal.h; the CLI installs the handlers). [] disables it.
  std::vector<std::string> save_on = {"TERM", "INT", "USR1"};
  std::vector<int> save_on_signals() const;  // validated names -> signal numbers
  // Refuse a run whose planned memory exceeds what the process may use (train/memory_check.h).
  bool memory_check = true;
  // [lora] (docs/LORA.md): r, alpha, dropout, targets, rslora, quantize, compute. Any key of the
  // section turns LoRA on (and then r must be >= 1); the targets are checked against
  // the model when it is built.
  LoraConfig lora;
  bool lora_section = false;

  AdamWConfig adamw() const;  // validated
  Precision precision_mode() const;  // from precision (ConfigError "train.precision: ...")
  // The kernel backend a run trains on: gemm and precision (ConfigError "train.gemm: ..."),
  // and under LoRA lora.compute and lora.quantize (kernels::lora_gemm_backend).
  const kernels::Backend& gemm_backend() const;
  LossScalerConfig loss_scaler_config() const;  // from loss_scale, loss_scale_growth_interval
  LrSchedule lr_schedule(int64_t total_steps) const;  // validated
  // The layout of a job of `world_size` ranks ([dist] dp, 0: all of them; zero),
  // validated against it (ConfigError naming the axis or the sizes).
  dist::ParallelLayout layout(int world_size) const;
};

// The rules whose wording differs between the commands.
struct CommonRules {
  // Known (pretraining): optim.warmup_steps "must be in [0, total steps] (got W, total steps N)". Unknown
  // until the data is read (SFT): "must be >= 0", and the trainer checks the bound.
  std::optional<int64_t> total_steps;
  // SFT: eval.batches 0 means the whole validation split; pretraining needs >= 1.
  bool eval_batches_zero_is_all = false;
};

// Throws ConfigError "section.key: rule" for the first value of the common sections
// that breaks a rule.
void validate_common(const CommonConfig& c, const CommonRules& rules);
// Adds the [optim], [eval], [checkpoint], [dist], [run] and [log] tables, and the precision
// keys to the [train] table (created if absent).
void insert_common_toml(toml::table& t, const CommonConfig& c);

// An array of strings, or one string split at commas (blanks trimmed); ConfigError
// naming `where` otherwise.
std::vector<std::string> lora_targets_from_toml(const toml::node& n, const std::string& where);

// [lora]'s keys: each marks the section present. lora.targets is a TOML array of
// strings or one comma-separated string (so lora.targets=q_proj,v_proj overrides).
template <class Config>
void add_lora_keys(toml_config::KeyTable<Config>& k) {
  using toml_config::get_as;
  auto num = [](auto member, const char* want) {
    return [member, want](Config& c, const toml::node& n, const std::string& where) {
      c.lora_section = true;
      c.lora.*member = get_as<std::remove_reference_t<decltype(c.lora.*member)>>(n, where, want);
    };
  };
  k["lora.r"] = num(&LoraConfig::r, "an integer >= 1");
  k["lora.alpha"] = num(&LoraConfig::alpha, "a number");
  k["lora.dropout"] = num(&LoraConfig::dropout, "a number in [0, 1)");
  k["lora.rslora"] = num(&LoraConfig::rslora, "true or false");
  k["lora.quantize"] = num(&LoraConfig::quantize, "\"none\", \"bf16\" or \"nf4\"");
  k["lora.compute"] = num(&LoraConfig::compute, "\"auto\", \"fp32\" or \"bf16\"");
  k["lora.targets"] = [](Config& c, const toml::node& n, const std::string& where) {
    c.lora_section = true;
    c.lora.targets = lora_targets_from_toml(n, where);
  };
}

// Adds the common sections' keys to a config's key table.
template <class Config>
void add_common_keys(toml_config::KeyTable<Config>& k) {
  using toml_config::field;
#define TEDDY_COMMON(key, T, member, want) \
  k[key] = field<T, Config>([](Config& c) -> T& { return c.member; }, want)
  TEDDY_COMMON("train.precision", std::string, precision, "\"fp32\", \"bf16\" or \"fp16\"");
  TEDDY_COMMON("train.gemm", std::string, gemm, "\"openblas\", \"onednn\" or \"auto\"");
  TEDDY_COMMON("train.loss_scale", float, loss_scale, "a number");
  TEDDY_COMMON("train.loss_scale_growth_interval", int64_t, loss_scale_growth_interval, "an integer");
  TEDDY_COMMON("optim.lr", float, lr, "a number");
  TEDDY_COMMON("optim.min_lr_ratio", float, min_lr_ratio, "a number");
  TEDDY_COMMON("optim.warmup_steps", int64_t, warmup_steps, "an integer");
  TEDDY_COMMON("optim.weight_decay", float, weight_decay, "a number");
  TEDDY_COMMON("optim.beta1", float, beta1, "a number");
  TEDDY_COMMON("optim.beta2", float, beta2, "a number");
  TEDDY_COMMON("optim.eps", float, eps, "a number");
  TEDDY_COMMON("optim.grad_clip", float, grad_clip, "a number");
  TEDDY_COMMON("eval.interval", int64_t, eval_interval, "an integer");
  TEDDY_COMMON("eval.batches", int, eval_batches, "an integer");
  TEDDY_COMMON("eval.task_interval", int64_t, eval_task_interval, "an integer (steps; 0: only at the end)");
  TEDDY_COMMON("checkpoint.interval", int64_t, checkpoint_interval, "an integer");
  TEDDY_COMMON("checkpoint.keep", int, keep_checkpoints, "an integer");
  TEDDY_COMMON("dist.zero", int, zero, "an integer 0..3");
  TEDDY_COMMON("dist.dp", int, dp, "an integer (0: all ranks)");
  TEDDY_COMMON("dist.timeout_s", double, timeout_s, "a number of seconds");
  TEDDY_COMMON("dist.overlap", bool, overlap, "true or false");
  TEDDY_COMMON("run.dir", std::string, run_dir, "a directory path");
  TEDDY_COMMON("run.peak_gflops", double, peak_gflops, "a number");
  TEDDY_COMMON("log.tensorboard", bool, tensorboard, "true or false");
  TEDDY_COMMON("run.memory_check", bool, memory_check, "true or false");
#undef TEDDY_COMMON
  k["run.save_on"] = [](Config& c, const toml::node& n, const std::string& where) {
    c.save_on = toml_config::string_list(n, where, "an array of signal names like [\"TERM\", \"INT\", \"USR1\"]");
  };
  add_lora_keys(k);
  for (const std::string& name : benchmark_task_names())
    k["eval." + name] = [name](Config& c, const toml::node& n, const std::string& where) {
      c.eval_tasks.push_back(eval_task_from_toml(name, n, where));
    };
}

}  // namespace teddy
