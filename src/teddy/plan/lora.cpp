#include "teddy/plan/lora.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/plan/params.h"

namespace teddy::plan {
namespace {

double aligned(double bytes) { return std::ceil(bytes / 64.0) * 64.0; }

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A block's linear weight (what bf16 / nf4 store quantized).
bool block_linear(const TensorCount& t) { return t.role == TensorRole::block && t.matrix && ends_with(t.name, ".weight"); }
bool vocab_matrix(const TensorCount& t) { return t.role == TensorRole::token_embedding || t.role == TensorRole::lm_head; }

// The Hugging Face modules (nn.Linear, quantized one by one as bitsandbytes does) a
// block linear's weight is made of, as element counts: LLaMA's fused attn.qkv is
// q_proj, k_proj, v_proj and mlp.up is gate_proj, up_proj; every other linear (and all
// of GPT-2's) is one module.
std::vector<int64_t> hf_modules(const ModelConfig& cfg, const TensorCount& t) {
  if (cfg.family != Family::llama) return {t.numel};
  const int64_t C = cfg.d_model, hs = cfg.head_dim();
  if (ends_with(t.name, "qkv.weight"))
    return {cfg.n_head * hs * C, cfg.n_kv_head * hs * C, cfg.n_kv_head * hs * C};
  if (ends_with(t.name, "up.weight")) return {t.numel / 2, t.numel / 2};
  return {t.numel};
}

}  // namespace

double LoraBaseBytes::of(std::string_view quantize) const {
  if (quantize == "none") return fp32;
  if (quantize == "bf16") return bf16;
  if (quantize == "nf4") return nf4;
  throw ConfigError("lora.quantize: unknown '" + std::string(quantize) + "' (known: none, bf16, nf4)");
}

double nf4_tensor_bytes(int64_t n, bool double_quant) {
  const double blocks = std::ceil(static_cast<double>(n) / 64.0);
  const double packed = std::ceil(static_cast<double>(n) / 2.0);
  if (!double_quant) return packed + 4 * blocks;
  return packed + blocks + 4 * std::ceil(blocks / 256.0) + 4;
}

LoraBaseBytes lora_base_bytes(const ModelConfig& cfg) {
  LoraBaseBytes b;
  double rest = 0, linear_bf16 = 0, linear_nf4 = 0, linear_nf4_no_dq = 0, vocab_bf16 = 0;
  for (const TensorCount& t : param_tensors(cfg)) {
    b.fp32 += 4.0 * static_cast<double>(align_floats(t.numel));
    if (block_linear(t)) {
      linear_bf16 += 2.0 * static_cast<double>(t.numel);
      for (int64_t n : hf_modules(cfg, t)) {
        linear_nf4 += nf4_tensor_bytes(n, true);
        linear_nf4_no_dq += nf4_tensor_bytes(n, false);
      }
    } else if (vocab_matrix(t)) {
      vocab_bf16 += 2.0 * static_cast<double>(t.numel);
    } else {
      rest += 4.0 * static_cast<double>(align_floats(t.numel));
    }
  }
  b.bf16 = rest + vocab_bf16 + linear_bf16;
  b.nf4 = rest + vocab_bf16 + linear_nf4;
  b.nf4_no_dq = rest + vocab_bf16 + linear_nf4_no_dq;
  return b;
}

int64_t lora_adapter_floats(const ModelConfig& cfg, const LoraConfig& lora) {
  lora.validate(cfg);
  int64_t n = 0;
  for (const LoraSite& s : lora_sites(cfg, lora)) {  // the targets' selection; the counting is ours
    int64_t rows = 0;
    for (const LoraPart& p : s.parts) rows += p.rows;
    n += align_floats(static_cast<int64_t>(s.parts.size()) * lora.r * s.in) + align_floats(rows * lora.r);
  }
  return n * cfg.n_layer;
}

int64_t lora_adapter_params(const ModelConfig& cfg, const LoraConfig& lora) {
  lora.validate(cfg);
  int64_t n = 0;
  for (const LoraSite& s : lora_sites(cfg, lora))
    for (const LoraPart& p : s.parts) n += static_cast<int64_t>(lora.r) * (s.in + p.rows);  // A_p and B_p
  return n * cfg.n_layer;
}

double lora_activation_bytes(const ModelConfig& cfg, const LoraConfig& lora, int64_t rows) {
  lora.validate(cfg);
  const double N = static_cast<double>(rows);
  double bytes = 0, max_cols = 0;
  for (const LoraSite& s : lora_sites(cfg, lora)) {
    const double cols = static_cast<double>(s.parts.size()) * lora.r;
    bytes += aligned(N * cols * 4) * cfg.n_layer;  // u = x A^T, kept per layer
    max_cols = std::max(max_cols, cols);
  }
  bytes += aligned(N * max_cols * 4);  // du, one linear at a time
  if (lora.dropout > 0) bytes += 2 * aligned(N * std::max(cfg.d_model, cfg.d_ff) * 4);  // dropped x and its gradient
  return bytes;
}

}  // namespace teddy::plan
