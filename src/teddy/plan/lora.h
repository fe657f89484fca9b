#pragma once
// LoRA and QLoRA in the planner: what a run with a frozen base holds, counted as the
// engine allocates it (Model::enable_lora / Model::with_lora, model/lora.h):
//   - trainable: the adapters alone, the flat buffer the engine shards and AdamW
//     updates; per adapted linear and part p, A_p (r, in) and B_p (rows_p, r), each
//     layer's A and B one tensor each, every tensor starting 64-byte aligned;
//   - the frozen base, replicated on every rank (never sharded, no gradient, no
//     optimizer state): quantize none keeps the whole model fp32 (the full layout);
//     bf16 / nf4 store the blocks' four linear weights in that format, the token
//     embedding and an untied head in bf16, and the rest (norms, biases, positions)
//     fp32, each tensor 64-byte aligned in one buffer;
//   - NF4 per Hugging Face module (q_proj, k_proj, v_proj, gate_proj, up_proj are
//     separate tensors inside teddy's fused attn.qkv / mlp.up, as bitsandbytes stores
//     them), per tensor of n weights: n/2 packed bytes, then per block of 64 one byte
//     (double quantization: 8-bit absmax codes, a float per 256 blocks, a float offset)
//     or a float (without);
//   - the activation arena's extra tensors: per layer and adapted linear the saved
//     u = x A^T (N, P*r), one (N, max P*r) gradient scratch, and with dropout two
//     (N, max(C, F)) buffers for the dropped input and its gradient.
// Written from that description, not from model/'s code: tests compare the two.
#include <cstdint>
#include <string_view>

#include "teddy/model/config.h"
#include "teddy/model/lora.h"

namespace teddy::plan {

// Bytes of the frozen base for each storage teddy offers (and NF4 without double
// quantization, for comparison: the engine always double-quantizes).
struct LoraBaseBytes {
  double fp32 = 0;       // quantize none
  double bf16 = 0;       // quantize bf16
  double nf4 = 0;        // quantize nf4 (double quantization)
  double nf4_no_dq = 0;  // NF4 with one float absmax per block
  double of(std::string_view quantize) const;  // none | bf16 | nf4
};
LoraBaseBytes lora_base_bytes(const ModelConfig& cfg);

// Bytes of one NF4 tensor of n weights (double_quant: with the 8-bit absmax codes).
double nf4_tensor_bytes(int64_t n, bool double_quant);

// Floats of the adapters' flat buffer (alignment padding included): the trainable
// parameters as the engine allocates them. lora must be valid for cfg (ConfigError).
int64_t lora_adapter_floats(const ModelConfig& cfg, const LoraConfig& lora);
// Adapter parameters proper (no padding).
int64_t lora_adapter_params(const ModelConfig& cfg, const LoraConfig& lora);

// Extra bytes LoRA adds to the activation arena for `rows` = B*T rows.
double lora_activation_bytes(const ModelConfig& cfg, const LoraConfig& lora, int64_t rows);

}  // namespace teddy::plan
