#pragma once
// Parameter counts computed from the config alone, tensor by tensor. Written
// independently of model/'s make_param_layout so that tests can cross-check the
// two: the plan's count must equal what the engine allocates for every preset.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/model/config.h"

namespace teddy::plan {

enum class TensorRole { token_embedding, position_embedding, block, final_norm, lm_head };

// The engine starts every tensor of its flat buffer on a 64-byte boundary.
constexpr int64_t kParamAlignFloats = 16;
inline int64_t align_floats(int64_t n) { return (n + kParamAlignFloats - 1) / kParamAlignFloats * kParamAlignFloats; }

struct TensorCount {
  std::string name;  // descriptive ("wte", "block.qkv.weight", ...), not the engine's names
  int64_t numel = 0;
  TensorRole role = TensorRole::block;
  int layer = -1;    // block index, -1 outside the blocks
  bool matrix = false;  // a weight that is multiplied by every token (counts in FLOPs)
};

// Every parameter tensor of the model in allocation order. With real_vocab the
// embedding and head have vocab_size rows instead of padded_vocab_size.
std::vector<TensorCount> param_tensors(const ModelConfig& cfg, bool real_vocab = false);

// LoRA adapters on every linear layer of every block (PEFT "all-linear" without the
// lm head), HF module granularity: GPT-2 c_attn, c_proj, c_fc, mlp.c_proj; LLaMA
// q, k, v, o, gate, up, down. Each adapter adds rank * (in + out) parameters.
struct LoraSpec {
  int rank = 0;  // 0: full fine-tuning / pretraining, everything trainable
};

struct ParamCount {
  int64_t total = 0;             // every parameter the engine allocates (padded vocab)
  int64_t allocated_floats = 0;  // the flat buffer's length: each tensor starts 64-byte aligned
  int64_t token_embedding = 0;   // padded_vocab * d_model
  int64_t position_embedding = 0;// max_seq_len * d_model (GPT-2), 0 for LLaMA
  int64_t lm_head = 0;           // untied head (LLaMA); 0 when tied to the embedding
  int64_t per_layer = 0;         // one transformer block
  int64_t blocks = 0;            // n_layer * per_layer
  int64_t non_embedding = 0;     // total - token_embedding - position_embedding (Kaplan's N;
                                 // an untied lm head counts, a tied one does not)
  int64_t matmul = 0;            // parameters a token is multiplied by: blocks + final norm +
                                 // the head matrix (tied or not). The N of "6N" FLOPs.
  int64_t total_real_vocab = 0;  // same model with the unpadded vocabulary
  int64_t non_embedding_real_vocab = 0;
  int64_t lora = 0;              // LoRA adapter parameters (0 without LoRA)
  int64_t trainable = 0;         // total, or lora when LoRA is on (base frozen)
};

// Validates cfg (ConfigError) and counts. lora.rank must be >= 0.
ParamCount count_params(const ModelConfig& cfg, const LoraSpec& lora = {});

}  // namespace teddy::plan
