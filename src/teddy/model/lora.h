#pragma once
// LoRA (Hu et al. 2021): a frozen linear W0 gains a trainable low-rank update,
//   y = x W0^T + scale * (drop(x) A^T) B^T,   scale = alpha / r  (rsLoRA: alpha / sqrt(r)),
// A (r, in) kaiming-uniform(a = sqrt(5)) as PEFT initialises it, B (out, r) zeros, so
// training starts exactly at the base model. Model::enable_lora moves the base
// weights into a frozen buffer and makes the flat parameter / gradient buffers (what
// AdamW, ZeRO, clipping and checkpoints see) hold only the adapters.
//
// teddy fuses q|k|v into one linear (attn.qkv) and, in LLaMA, gate|up (mlp.up). PEFT
// adapts q_proj, k_proj and v_proj separately, each with its own A; so an adapted
// fused linear has one *part* per HF module: part p owns output rows
// [off_p, off_p + n_p) and has its own A_p (r, in) and B_p (n_p, r). The flat buffer
// stacks them: layers.i.attn.qkv.lora_A is (P*r, in) = [A_q; A_k; A_v] and
// .lora_B is (n_q + n_k + n_v, r) = [B_q; B_k; B_v]. Parts can be left out (targets
// q_proj and v_proj only).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "teddy/model/config.h"

namespace teddy {

struct LoraConfig {
  int r = 0;                         // rank; 0 = LoRA off
  float alpha = 16.0f;               // scale = alpha / r (rslora: alpha / sqrt(r))
  float dropout = 0.0f;              // on the adapter's input, training only, [0, 1)
  std::vector<std::string> targets;  // empty or {"all"}: every linear of every block
  bool rslora = false;
  std::string quantize = "none";     // frozen base storage: none (fp32) | bf16 | nf4
  // The frozen base's products (bitsandbytes' bnb_4bit_compute_dtype): auto (bf16 for a
  // bf16 / NF4 base where the CPU has native bf16 and train.gemm is not openblas, fp32
  // otherwise) | fp32 | bf16 (kernels::lora_gemm_backend; docs/LORA.md).
  std::string compute = "auto";

  bool enabled() const { return r > 0; }
  float scale() const;
  // Throws ConfigError naming lora.<key> and the rule: r >= 1, alpha > 0 and finite,
  // 0 <= dropout < 1, quantize and compute known (validate_values); and for a model, r no wider than
  // its narrowest linear and every target known for its family (validate).
  void validate_values() const;
  void validate(const ModelConfig& cfg) const;
};

// The four linears of a block that can carry an adapter, in block order.
enum class LoraLinear { qkv = 0, proj = 1, up = 2, down = 3 };
constexpr int kLoraLinears = 4;

struct LoraPart {
  std::string hf_module;  // e.g. "self_attn.q_proj" (LLaMA), "attn.c_attn" (GPT-2): PEFT's module path in a block
  int off = 0, rows = 0;  // output rows of the fused teddy weight this part owns
};

// One adapted linear of a block (the same in every block).
struct LoraSite {
  LoraLinear linear;
  std::string name;        // teddy's tensor prefix, "attn.qkv" / "attn.proj" / "mlp.up" / "mlp.down"
  int in = 0, out = 0;     // the linear's input and output widths
  std::vector<LoraPart> parts;  // the adapted parts (at least one)
  std::vector<int> part_cols() const;  // {off_0, n_0, off_1, n_1, ...} for the ops
  int b_rows() const;      // sum of the parts' rows
};

// Every part a block of `cfg` offers, by linear (all four, all parts).
std::vector<LoraSite> lora_all_sites(const ModelConfig& cfg);
// The sites `lora.targets` selects (validated: an unknown name is a ConfigError listing
// the known ones). Target names: "all" / "all-linear"; teddy's "attn.qkv", "attn.proj",
// "mlp.up", "mlp.down"; the HF module names of the family (LLaMA: q_proj k_proj v_proj
// o_proj gate_proj up_proj down_proj; GPT-2: c_attn c_proj c_fc, where c_proj means
// both attn.c_proj and mlp.c_proj as in PEFT, or "attn.c_proj" / "mlp.c_proj").
std::vector<LoraSite> lora_sites(const ModelConfig& cfg, const LoraConfig& lora);

// The adapters' flat layout, block by block (layer = block index, so ZeRO-3 gathers
// a block's adapters with the block): layers.i.<site>.lora_A (P*r, in) then
// .lora_B (sum rows, r), both in the decay group (like PEFT under the HF Trainer).
struct ParamLayout;
ParamLayout make_lora_layout(const ModelConfig& cfg, const LoraConfig& lora);

// PEFT's module path of a block's part: "model.layers.3.self_attn.q_proj" (LLaMA),
// "transformer.h.3.attn.c_attn" (GPT-2); the adapter tensor is
// "base_model.model.<path>.lora_A.weight".
std::string peft_module_path(const ModelConfig& cfg, int layer, const LoraPart& part);

// A and B as PEFT initialises them: A_p kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in),
// 1/sqrt(in)) per part, B zeros. Deterministic in seed (not in the thread count).
void lora_init(float* adapters, const ParamLayout& layout, uint64_t seed);

}  // namespace teddy
