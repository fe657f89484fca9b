// Attention through the backend's ops with the workspace the model planned in its
// activation arena (without one, an op allocates and faults in fresh scratch on every
// call).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "teddy/kernels/backend.h"
#include "teddy/model/model.h"
#include "teddy/model/model_impl.h"

namespace teddy::model_detail {

size_t attention_scratch_floats(const ModelConfig& cfg, int rows, const Context& ctx) {
  if (rows <= 0) return 0;
  const int T = std::min(rows, cfg.max_seq_len), B = (rows + T - 1) / T;
  const int threads = std::max({omp_get_max_threads(), omp_get_num_procs(), ctx.threads});
  const int NH = cfg.n_head, NKV = cfg.n_kv_head, HS = cfg.head_dim();
  const kernels::Backend& k = ctx.ops();
  return std::max(k.attention_forward_workspace(B, T, NH, NKV, HS, threads),
                  k.attention_backward_workspace(B, T, NH, NKV, HS, threads));
}

void attention_fwd(const BlockShape& s, float* out, float* lse, const float* qkv, const int32_t* seg) {
  s.k->attention_forward(out, lse, qkv, seg, s.B, s.T, s.NH, s.NKV, s.HS, {s.attn_scratch, s.attn_scratch_floats});
}

void attention_bwd(const BlockShape& s, float* dqkv, const float* dout, const float* qkv, const float* out,
                   const float* lse, const int32_t* seg, kernels::Grad mode) {
  s.k->attention_backward(dqkv, dout, qkv, out, lse, seg, s.B, s.T, s.NH, s.NKV, s.HS, mode,
                          {s.attn_scratch, s.attn_scratch_floats});
}

}  // namespace teddy::model_detail

namespace teddy {

size_t Model::attention_workspace_bytes(const ModelConfig& cfg, int B, int T, const Context& ctx) {
  // The workspace grows with B only through a few packed groups per round; clamping the
  // row count keeps B*T inside int for the planner's searches over huge micro-batches.
  const int64_t rows = std::min<int64_t>(static_cast<int64_t>(B) * T, std::numeric_limits<int>::max() / 2);
  return model_detail::attention_scratch_floats(cfg, static_cast<int>(rows), ctx) * sizeof(float);
}

}  // namespace teddy
