#pragma once
// Memory per device for one training setup: model states (parameters, gradients,
// optimizer) after ZeRO sharding, plus activations for one micro-batch.
//
// Model states, bytes per parameter (P params, G grads, K optimizer state):
//   fp32:       P 4, G 4, K 8  (Adam m, v)                       = 16
//   bf16/fp16:  P 2, G 2, K 12 (fp32 master weights, m, v)        = 16 (ZeRO's 16 psi)
// ZeRO over N_d data-parallel ranks: stage 0 (DDP) P+G+K; stage 1 P+G+K/N_d;
// stage 2 P+(G+K)/N_d; stage 3 (P+G+K)/N_d.
//
// Activations: teddy's own accounting, tensor by tensor, of what the engine's
// arena holds for forward_backward (model/activations.cpp): per block, what it saves
// for backward; outside the blocks, the embedding output, final norm, one classifier
// chunk of logits; and the activation-gradient scratch the backward reuses. Alongside,
// Korthikanti et al.'s sbh(34 + 5as/h) bytes per layer (PyTorch-eager style, 16-bit,
// full attention matrix) as a reference column.
#include <cstdint>

#include "teddy/core/dtype.h"
#include "teddy/model/config.h"
#include "teddy/model/lora.h"
#include "teddy/plan/flops.h"

namespace teddy::plan {

struct TrainSetup {
  int micro_batch = 1;      // sequences per device per forward_backward
  int seq_len = 1024;       // T
  DType precision = DType::f32;  // f32: plain fp32; bf16/f16: mixed precision (fp32 master)
  int zero_stage = 0;       // 0 (DDP) .. 3
  int dp = 1;               // data-parallel ranks (ZeRO shards over these)
  int tp = 1;               // tensor-parallel degree (Megatron-style estimate; teddy has none yet)
  int pp = 1;               // pipeline stages (1F1B estimate; teddy has none yet)
  Recompute recompute = Recompute::none;
  // LoRA / QLoRA (lora.r > 0): the states are the adapters' (plan/lora.h) plus the
  // frozen base (lora.quantize: fp32, bf16 or NF4), the arena gains the adapters'
  // saved tensors. The engine trains LoRA in fp32 only: other precisions are refused.
  LoraConfig lora;
  // Throws ConfigError naming the field for out-of-range values.
  void validate(const ModelConfig& cfg) const;
};

struct BytesPerParam {
  double params = 0, grads = 0, optimizer = 0;
  double total() const { return params + grads + optimizer; }
};
BytesPerParam bytes_per_param(DType precision);

struct ModelStates {
  int64_t params_on_device = 0;  // trainable parameters this device holds before ZeRO (TP/PP slice; floats incl. alignment)
  double params = 0, grads = 0, optimizer = 0;  // bytes per device after ZeRO
  double base = 0;  // LoRA: the frozen base, whole on every device (no gradient, no optimizer state)
  double total() const { return params + grads + optimizer + base; }
};

struct ActivationBytes {
  double per_layer = 0;   // what one block keeps for backward (this micro-batch)
  double layers = 0;      // all blocks this device keeps (1F1B: every layer's worth on stage 0)
  double outside = 0;     // positions, embedding output, final norm, logits chunk, losses
  double scratch = 0;     // activation gradients reused by every block + recompute workspace
  double lora = 0;        // LoRA: the adapters' saved u per layer, their gradient and dropout scratch
  double total() const { return layers + outside + scratch + lora; }
  // Reference: Korthikanti et al. 2022 (no SP), bytes at 16-bit activations, x2 for fp32.
  double korthikanti_per_layer = 0;
  double korthikanti_layers = 0;
};

struct MemoryEstimate {
  TrainSetup setup;
  ModelStates states;
  ActivationBytes activations;
  double total() const { return states.total() + activations.total(); }
};

// ZeRO's per-device model states for psi parameters (the formula alone).
ModelStates zero_states(double psi, DType precision, int zero_stage, int dp);

// Validates cfg and setup, then estimates.
MemoryEstimate estimate_memory(const ModelConfig& cfg, const TrainSetup& setup);
// Model states alone (no activations).
ModelStates model_states(const ModelConfig& cfg, const TrainSetup& setup);
// Activations alone, for setup.micro_batch.
ActivationBytes activation_bytes(const ModelConfig& cfg, const TrainSetup& setup);

// Largest micro-batch whose estimate fits in device_bytes (binary search over
// [1, a cap where B*T still fits the engine's int32 row count]). Throws ConfigError
// with the numbers when the model states alone, or states plus one sample, do not fit.
int max_micro_batch(const ModelConfig& cfg, TrainSetup setup, double device_bytes);

}  // namespace teddy::plan
