#include "teddy/plan/params.h"

#include <string>

#include "teddy/core/error.h"

namespace teddy::plan {

std::vector<TensorCount> param_tensors(const ModelConfig& cfg, bool real_vocab) {
  const int64_t C = cfg.d_model;
  const int64_t V = real_vocab ? cfg.vocab_size : cfg.padded_vocab_size;
  const int64_t F = cfg.d_ff;
  const int64_t QKV = cfg.qkv_dim();
  const bool gpt2 = cfg.family == Family::gpt2;
  // GPT-2: LayerNorm (weight + bias), learned positions, GELU MLP.
  // LLaMA: RMSNorm (weight only), RoPE, SwiGLU ([gate; up]). Linear biases follow cfg.bias.
  const bool norm_bias = gpt2;
  const int64_t up_rows = gpt2 ? F : 2 * F;

  std::vector<TensorCount> t;
  auto add = [&](std::string name, int64_t n, TensorRole role, int layer, bool matrix) {
    t.push_back({std::move(name), n, role, layer, matrix});
  };
  add("token_embedding", V * C, TensorRole::token_embedding, -1, false);
  if (gpt2) add("position_embedding", static_cast<int64_t>(cfg.max_seq_len) * C,
                TensorRole::position_embedding, -1, false);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "block." + std::to_string(l) + ".";
    add(p + "norm1.weight", C, TensorRole::block, l, false);
    if (norm_bias) add(p + "norm1.bias", C, TensorRole::block, l, false);
    add(p + "attn.qkv.weight", QKV * C, TensorRole::block, l, true);
    if (cfg.has_qkv_bias()) add(p + "attn.qkv.bias", QKV, TensorRole::block, l, false);
    add(p + "attn.proj.weight", C * C, TensorRole::block, l, true);
    if (cfg.bias) add(p + "attn.proj.bias", C, TensorRole::block, l, false);
    add(p + "norm2.weight", C, TensorRole::block, l, false);
    if (norm_bias) add(p + "norm2.bias", C, TensorRole::block, l, false);
    add(p + "mlp.up.weight", up_rows * C, TensorRole::block, l, true);
    if (cfg.bias) add(p + "mlp.up.bias", up_rows, TensorRole::block, l, false);
    add(p + "mlp.down.weight", C * F, TensorRole::block, l, true);
    if (cfg.bias) add(p + "mlp.down.bias", C, TensorRole::block, l, false);
  }
  add("final_norm.weight", C, TensorRole::final_norm, -1, false);
  if (norm_bias) add("final_norm.bias", C, TensorRole::final_norm, -1, false);
  if (!cfg.tie_embeddings) add("lm_head.weight", V * C, TensorRole::lm_head, -1, true);
  return t;
}

namespace {

// (in, out) of each LoRA-adapted linear in one block, at HF module granularity.
std::vector<std::pair<int64_t, int64_t>> lora_linears(const ModelConfig& cfg) {
  const int64_t C = cfg.d_model, F = cfg.d_ff;
  const int64_t kv = static_cast<int64_t>(cfg.n_kv_head) * cfg.head_dim();
  if (cfg.family == Family::gpt2) return {{C, cfg.qkv_dim()}, {C, C}, {C, F}, {F, C}};
  return {{C, C}, {C, kv}, {C, kv}, {C, C}, {C, F}, {C, F}, {F, C}};
}

}  // namespace

ParamCount count_params(const ModelConfig& cfg, const LoraSpec& lora) {
  cfg.validate();
  if (lora.rank < 0) throw ConfigError("lora rank: must be >= 0 (got " + std::to_string(lora.rank) + ")");
  ParamCount c;
  for (const TensorCount& t : param_tensors(cfg)) {
    c.total += t.numel;
    c.allocated_floats += align_floats(t.numel);
    switch (t.role) {
      case TensorRole::token_embedding: c.token_embedding += t.numel; break;
      case TensorRole::position_embedding: c.position_embedding += t.numel; break;
      case TensorRole::lm_head: c.lm_head += t.numel; break;
      case TensorRole::block: c.blocks += t.numel; break;
      case TensorRole::final_norm: break;
    }
  }
  c.per_layer = cfg.n_layer > 0 ? c.blocks / cfg.n_layer : 0;
  c.non_embedding = c.total - c.token_embedding - c.position_embedding;
  // The tied head multiplies every token by the embedding matrix, so it counts in FLOPs.
  c.matmul = c.non_embedding + (cfg.tie_embeddings ? c.token_embedding : 0);
  for (const TensorCount& t : param_tensors(cfg, /*real_vocab=*/true)) {
    c.total_real_vocab += t.numel;
    if (t.role != TensorRole::token_embedding && t.role != TensorRole::position_embedding)
      c.non_embedding_real_vocab += t.numel;
  }
  if (lora.rank > 0) {
    for (auto [in, out] : lora_linears(cfg)) c.lora += static_cast<int64_t>(lora.rank) * (in + out);
    c.lora *= cfg.n_layer;
  }
  c.trainable = lora.rank > 0 ? c.lora : c.total;
  return c;
}

}  // namespace teddy::plan
