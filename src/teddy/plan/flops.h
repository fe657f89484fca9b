#pragma once
// Training FLOPs per token, two ways: the 6N + attention rule of thumb (Kaplan,
// PaLM, nanoGPT/llm.c's MFU) and an exact count of every GEMM (2*m*n*k each).
// Only matrix multiplications are counted: norms, softmax, GELU/SwiGLU, RoPE and
// the optimizer are O(N) or O(T*C) per token and well under 1% for real models.
//
// Attention QK^T and PV: "dense" counts the full T x T score matrix (what the
// PaLM formula 12*L*T*C and most MFU reports assume); "causal" counts only the
// entries a causal kernel computes, on average (T+1)/2 keys per query.
// Backward = 2 x forward for every GEMM (input and weight gradients), so one
// training step costs 3 x forward. Recomputation adds hardware FLOPs but not
// model FLOPs; MFU is defined on model FLOPs.
#include <cstdint>
#include <string>
#include <string_view>

#include "teddy/model/config.h"
#include "teddy/model/model.h"  // Recompute

namespace teddy::plan {

// Forward FLOPs per token by component (exact GEMM counts).
struct ForwardFlops {
  double qkv = 0;           // per layer: 2 * C * qkv_dim
  double attn_dense = 0;    // per layer: QK^T + PV over all T keys: 4 * T * n_head * head_dim
  double attn_causal = 0;   // per layer: the same over (T+1)/2 keys on average
  double proj = 0;          // per layer: 2 * C * C
  double mlp = 0;           // per layer: up (+gate) and down
  double lm_head = 0;       // once: 2 * C * padded_vocab
  double dense() const;     // whole model, dense attention
  double causal() const;    // whole model, causal attention
  int n_layer = 0;
};

struct FlopsPerToken {
  int seq_len = 0;
  ForwardFlops forward;
  // Rule of thumb (training = forward + backward):
  double six_n = 0;             // 6 * N, N = ParamCount::matmul (non-embedding + head matrix)
  double attention_dense = 0;   // 12 * L * T * d_attn (PaLM / nanoGPT)
  double attention_causal = 0;  // 6 * L * (T+1) * d_attn (half: causal)
  double approx() const { return six_n + attention_dense; }  // the headline number, used for time/MFU
  double approx_causal() const { return six_n + attention_causal; }
  // Exact (3 x forward GEMMs):
  double exact_dense() const { return 3 * forward.dense(); }
  double exact_causal() const { return 3 * forward.causal(); }
};

// Throws ConfigError for seq_len < 1 or an invalid config.
FlopsPerToken flops_per_token(const ModelConfig& cfg, int seq_len);

// Extra forward work per token that a recompute mode repeats in backward
// (hardware FLOPs = model FLOPs + this): "attention" repeats norm1 + QKV + attention,
// "block" repeats the blocks' forward except the MLP down projection (its output is
// the next block's input, which is kept).
// The mode is the engine's own (model/model.h), so a plan and a run mean the same thing.
using teddy::Recompute;
using teddy::recompute_from_name;  // none | attention | block
using teddy::recompute_name;
double recompute_flops_per_token(const ModelConfig& cfg, int seq_len, Recompute r);

}  // namespace teddy::plan
