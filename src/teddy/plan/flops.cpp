#include "teddy/plan/flops.h"

#include <string>

#include "teddy/core/error.h"
#include "teddy/plan/params.h"

namespace teddy::plan {

double ForwardFlops::dense() const { return n_layer * (qkv + attn_dense + proj + mlp) + lm_head; }
double ForwardFlops::causal() const { return n_layer * (qkv + attn_causal + proj + mlp) + lm_head; }

FlopsPerToken flops_per_token(const ModelConfig& cfg, int seq_len) {
  cfg.validate();
  if (seq_len < 1) throw ConfigError("seq_len: must be >= 1 (got " + std::to_string(seq_len) + ")");
  const double C = cfg.d_model, F = cfg.d_ff, T = seq_len, L = cfg.n_layer;
  const double d_attn = static_cast<double>(cfg.n_head) * cfg.head_dim();  // == C
  const double up_rows = cfg.family == Family::gpt2 ? F : 2 * F;  // SwiGLU: [gate; up]

  FlopsPerToken f;
  f.seq_len = seq_len;
  ForwardFlops& fw = f.forward;
  fw.n_layer = cfg.n_layer;
  fw.qkv = 2 * C * cfg.qkv_dim();
  // One query against k keys: QK^T is k dot products of length head_dim per head, PV the
  // same: 2 GEMMs x 2 FLOPs per multiply-add x k x d_attn.
  fw.attn_dense = 4 * T * d_attn;
  fw.attn_causal = 4 * ((T + 1) / 2) * d_attn;  // query t sees t+1 keys; mean over t = (T+1)/2
  fw.proj = 2 * C * C;
  fw.mlp = 2 * C * up_rows + 2 * F * C;
  fw.lm_head = 2 * C * cfg.padded_vocab_size;

  // N for 6N: the parameters each token is multiplied by (blocks, final norm, head matrix).
  const double n_matmul = static_cast<double>(count_params(cfg).matmul);
  f.six_n = 6 * n_matmul;
  f.attention_dense = 12 * L * T * d_attn;
  f.attention_causal = 6 * L * (T + 1) * d_attn;
  return f;
}

double recompute_flops_per_token(const ModelConfig& cfg, int seq_len, Recompute r) {
  const FlopsPerToken f = flops_per_token(cfg, seq_len);
  const ForwardFlops& fw = f.forward;
  switch (r) {
    case Recompute::none: return 0;
    case Recompute::attention: return fw.n_layer * (fw.qkv + fw.attn_causal);
    case Recompute::block: {
      const double down = 2.0 * cfg.d_ff * cfg.d_model;  // not redone: block outputs are kept
      return fw.n_layer * (fw.qkv + fw.attn_causal + fw.proj + fw.mlp - down);
    }
  }
  return 0;
}

}  // namespace teddy::plan
