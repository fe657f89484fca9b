#pragma once
// Hugging Face model conventions for teddy's two families: config.json <-> ModelConfig,
// and where each HF tensor lives in teddy's parameter layout.
//
//   GPT2LMHeadModel (model_type "gpt2")            LlamaForCausalLM (model_type "llama"); Qwen2ForCausalLM
//                                                  ("qwen2") is the same with q/k/v biases (ModelConfig::qkv_bias)
//   transformer.wte.weight      [V, C]             model.embed_tokens.weight            [V, C]
//   transformer.wpe.weight      [T, C]             model.layers.i.self_attn.{q,k,v}_proj [NH*HS | NKV*HS, C]
//   transformer.h.i.ln_1.{weight,bias}             model.layers.i.self_attn.o_proj       [C, NH*HS]
//   transformer.h.i.attn.c_attn [C, 3C] Conv1D     model.layers.i.mlp.{gate,up}_proj     [F, C]
//   transformer.h.i.attn.c_proj [C, C]  Conv1D     model.layers.i.mlp.down_proj          [C, F]
//   transformer.h.i.ln_2, mlp.c_fc [C, F],         model.layers.i.{input,post_attention}_layernorm
//     mlp.c_proj [F, C] (Conv1D), biases           model.norm.weight
//   transformer.ln_f, lm_head.weight (untied)      lm_head.weight (untied)
//
// GPT-2's Conv1D stores [in, out]: the transpose of teddy's (and nn.Linear's) [out, in].
// teddy fuses q/k/v into one attn.qkv weight (rows [q | k | v], head-major, HF's own
// rotate-half RoPE order, so no permutation) and gate/up into mlp.up (rows [gate; up]).
// Embedding and head rows beyond vocab_size are teddy's padding (zero; never exported).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "teddy/model/config.h"

namespace teddy {

// Where one HF tensor lives: rows [row_begin, row_begin + rows) of a teddy tensor
// (dim 0; a 1-D tensor has one column). transpose: HF stores the [cols, rows] transpose
// (GPT-2's Conv1D).
struct HfTensorSpec {
  std::string hf_name;           // e.g. "transformer.h.0.attn.c_attn.weight"
  std::vector<int64_t> hf_shape;
  std::string teddy_name;        // e.g. "layers.0.attn.qkv.weight"
  int64_t row_begin = 0, rows = 0, cols = 1;
  bool transpose = false;
};

// The tensors an HF checkpoint of `cfg` holds, in the order transformers' state_dict
// lists them (what save_pretrained shards by). The lm head appears only when untied.
std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& cfg);

// Buffers some checkpoints carry that are not parameters (GPT-2's attn.bias and
// attn.masked_bias causal masks, LLaMA's rotary_emb.inv_freq): skipped on import.
bool hf_ignorable_tensor(Family f, const std::string& name);

// What config.json says beyond ModelConfig, kept so an export writes it back.
struct HfConfigExtras {
  std::string architecture;     // "GPT2LMHeadModel" | "LlamaForCausalLM"
  nlohmann::json bos_token_id;  // number, array, or null
  nlohmann::json eos_token_id;
  nlohmann::json pad_token_id;
  std::string torch_dtype;      // as written ("float32", "bfloat16", ...), "" if absent
};

// A token-id field of config.json / generation_config.json: null, an id (0..INT32_MAX)
// or a list of ids.
bool is_hf_token_ids(const nlohmann::json& v);

// Reads config.json (already parsed; `path` names it in errors). Refuses, naming the
// key, every setting teddy cannot represent: another architecture or model_type, an
// activation other than GPT-2's tanh GELU / LLaMA's SiLU, head_dim != hidden / heads,
// rope_scaling other than llama3, attention_bias != mlp_bias, sliding windows,
// cross-attention, ...
// Returns a validated config with padded_vocab_size = pad_vocab(vocab_size).
ModelConfig hf_config_to_model(const nlohmann::json& config, const std::string& path, HfConfigExtras* extras);

// config.json for `cfg` (torch_dtype: "float32" | "bfloat16" | "float16"); keys sorted, as
// transformers writes them.
nlohmann::json model_to_hf_config(const ModelConfig& cfg, const HfConfigExtras& extras,
                                          const std::string& torch_dtype);

// The HF architecture name teddy writes for a family, and for a config (Qwen2ForCausalLM
// when it has q/k/v biases alone).
std::string hf_architecture(Family f);
std::string hf_architecture(const ModelConfig& cfg);

// A float as the shortest decimal that reads back as the same float, as a double
// (so config.json says 1e-05, not 9.999999747378752e-06).
double float_for_json(float v);

}  // namespace teddy
