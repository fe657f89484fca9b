#pragma once
// The combined plan behind `teddy plan`: parameters, FLOPs, tokens, time and memory
// for one model and training setup, computed once so every view (table, JSON,
// subcommand) reports the same numbers.
#include <optional>
#include <string>

#include "teddy/model/config.h"
#include "teddy/plan/device.h"
#include "teddy/plan/flops.h"
#include "teddy/plan/memory.h"
#include "teddy/plan/params.h"
#include "teddy/plan/scaling.h"

namespace teddy::plan {

struct PlanInput {
  std::string model_name;  // preset name, or "custom"
  ModelConfig cfg;
  TrainSetup setup;
  LoraSpec lora;
  double tokens = 0;         // training tokens; 0: Chinchilla-optimal for the model size
  Device device;             // peak_flops 0: no time estimate
  double mfu = 0.4;
  double device_memory = 0;  // bytes; 0: no fit check
};

struct Plan {
  PlanInput input;
  ParamCount params;
  FlopsPerToken flops;
  double recompute_flops_per_token = 0;  // extra hardware FLOPs per token (not in MFU)
  double tokens = 0;
  bool tokens_from_chinchilla = false;
  double train_flops = 0;                // flops.approx() * tokens
  std::optional<TrainingTime> time;      // when the device's peak is known
  MemoryEstimate memory;
  bool fit_checked = false;              // device_memory given
  bool fits = false;                     // the requested micro-batch fits
  int max_micro_batch = 0;               // 0 when not even one sample fits
  std::string fit_error;                 // why not, when max_micro_batch == 0
  // Scaling laws at (params.total, tokens).
  double chinchilla_loss = 0, kaplan_loss_params = 0, kaplan_loss_tokens = 0;
  ComputeOptimal optimal;                // Chinchilla (table) for params.total
};

// Validates everything (ConfigError naming the field) and computes the plan.
Plan make_plan(const PlanInput& input);

}  // namespace teddy::plan
