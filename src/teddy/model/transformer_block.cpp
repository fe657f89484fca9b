// One pre-norm transformer block, forward and backward:
//   h   = x + proj(attention(rope(qkv(norm1(x)))))
//   out = h + down(act(up(norm2(h))))      act: GELU (GPT-2) or SwiGLU (LLaMA)
#include <cstring>

#include "teddy/core/error.h"
#include "teddy/model/model_impl.h"

namespace teddy::model_detail {

void zero_floats(float* p, size_t n) {
  constexpr size_t kBlock = size_t{1} << 14;
  const size_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 8)
  for (size_t i = 0; i < blocks; ++i) {
    const size_t lo = i * kBlock, len = (n - lo < kBlock) ? n - lo : kBlock;
    std::memset(p + lo, 0, len * sizeof(float));
  }
}

BlockShape block_shape(const ModelConfig& cfg, int B, int T, const kernels::Backend& k, const double* inv_freq,
                       Profiler* prof) {
  BlockShape s;
  s.k = &k;
  s.prof = prof;
  s.B = B;
  s.T = T;
  s.N = B * T;
  s.C = cfg.d_model;
  s.NH = cfg.n_head;
  s.NKV = cfg.n_kv_head;
  s.HS = cfg.head_dim();
  s.QKV = cfg.qkv_dim();
  s.F = cfg.d_ff;
  s.gpt2 = cfg.family == Family::gpt2;
  s.eps = cfg.norm_eps;
  TEDDY_CHECK(s.gpt2 || inv_freq, "block_shape: a llama model needs its RoPE frequency table");
  s.inv_freq = inv_freq;
  return s;
}

void keep16(const BlockShape& s, const char* what, float* x, uint16_t* bits, size_t n) {
  if (s.prec == DType::f32) return;
  ProfileScope scope(s.prof, what);
  s.k->round_through(s.prec, x, bits, n);
}

void block_widen(const BlockShape& s, const Activations& acts, int l) {
  if (s.prec == DType::f32) return;
  ProfileScope scope(s.prof, "widen_saved");
  const LayerActs& a = acts.layers[l];
  const size_t N = static_cast<size_t>(s.N), up_cols = s.gpt2 ? s.F : 2 * s.F;
  s.k->widen_to_f32(s.prec, acts.resid[l], acts.resid16[l], N * s.C);
  // bf16 GEMMs read ln1 and ln2 as the 16-bit copies (only GEMMs read them).
  if (a.ln1_16) {  // the attention half was kept (recompute none)
    if (!s.gemm16) s.k->widen_to_f32(s.prec, a.ln1, a.ln1_16, N * s.C);
    s.k->widen_to_f32(s.prec, a.qkv, a.qkv_16, N * s.QKV);
    s.k->widen_to_f32(s.prec, a.att, a.att_16, N * s.C);
  }
  if (a.h_16) {  // the MLP half was kept (recompute none or attention)
    s.k->widen_to_f32(s.prec, a.h, a.h_16, N * s.C);
    if (!s.gemm16) s.k->widen_to_f32(s.prec, a.ln2, a.ln2_16, N * s.C);
    s.k->widen_to_f32(s.prec, a.up, a.up_16, N * up_cols);
  }
}

void norm_forward(const BlockShape& s, float* out, float* mean, float* rstd, const float* inp,
                  const float* w, const float* b) {
  ProfileScope scope(s.prof, s.gpt2 ? "layernorm_forward" : "rmsnorm_forward");
  if (s.gpt2)
    s.k->layernorm_forward(out, mean, rstd, inp, w, b, s.N, s.C, s.eps);
  else
    s.k->rmsnorm_forward(out, rstd, inp, w, s.N, s.C, s.eps);
}

void norm_backward(const BlockShape& s, float* dinp, float* dw, float* db, const float* dout,
                   const float* inp, const float* w, const float* mean, const float* rstd) {
  ProfileScope scope(s.prof, s.gpt2 ? "layernorm_backward" : "rmsnorm_backward");
  if (s.gpt2)
    s.k->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, s.N, s.C);
  else
    s.k->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, s.N, s.C);
}

namespace {

// The adapter of linear `i` in w, or nullptr.
const LoraRef* lora_of(const LayerTensors& w, LoraLinear i) {
  if (!w.lora) return nullptr;
  const LoraRef& r = w.lora[static_cast<int>(i)];
  return r.A ? &r : nullptr;
}

// The quantized base weight of linear `i` in w, or nullptr.
const kernels::QuantWeight* quant_of(const LayerTensors& w, LoraLinear i) {
  return w.q ? &w.q[static_cast<int>(i)] : nullptr;
}

// The mask seed of sample row b's first element: dropout_hash(seed, i + k) equals
// dropout_hash(seed + k * golden, i), so each sample's (T, width) slab is one op call
// with its global index offset folded into the seed (BlockShape::lora_sample0).
uint64_t sample_seed(const BlockShape& s, uint64_t seed, int b, int width) {
  const uint64_t first = (s.lora_sample0 + static_cast<uint64_t>(b)) * static_cast<uint64_t>(s.lora_stride_t) *
                         static_cast<uint64_t>(width);
  return seed + first * 0x9E3779B97F4A7C15ull;
}
void drop_fwd(const BlockShape& s, float* out, const float* inp, int width, uint64_t seed) {
  const size_t slab = static_cast<size_t>(s.T) * width;
  for (int b = 0; b < s.B; ++b)
    s.k->dropout_forward(out + b * slab, inp + b * slab, static_cast<int64_t>(slab), s.lora_dropout,
                         sample_seed(s, seed, b, width));
}
void drop_bwd(const BlockShape& s, float* dinp, const float* dout, int width, uint64_t seed) {
  const size_t slab = static_cast<size_t>(s.T) * width;
  for (int b = 0; b < s.B; ++b)
    s.k->dropout_backward(dinp + b * slab, dout + b * slab, static_cast<int64_t>(slab), s.lora_dropout,
                          sample_seed(s, seed, b, width), kernels::Grad::add);
}

// A linear's operands: its input (fp32, and its saved 16-bit copy or nullptr) and its
// weight (fp32, and the bf16 copy under bf16 GEMMs or nullptr). With w16 the products
// are linear16's: the 16-bit input when there is one (then `inp` may be stale: ln1 and
// ln2 are not widened), else the fp32 input rounded by the op.
struct LinearIn {
  const float* inp;
  const uint16_t* inp16;
  const float* w;
  const uint16_t* w16;
};

void linear_fwd(const BlockShape& s, float* out, LinearIn in, const float* b, int C, int OC,
                const LoraRef* lr = nullptr, const kernels::QuantWeight* qw = nullptr) {
  const float* inp = in.inp;
  {
    ProfileScope scope(s.prof, qw ? "linear_forward_q" : "linear_forward", linear_flops(s.N, C, OC));
    if (qw)
      s.k->linear_forward_q(out, inp, qw, b, s.N, C, OC);
    else if (in.w16)
      s.k->linear16_forward(out, in.inp16 ? nullptr : inp, in.inp16, in.w16, b, s.N, C, OC);
    else
      s.k->linear_forward(out, inp, in.w, b, s.N, C, OC);
  }
  if (!lr) return;
  ProfileScope scope(s.prof, "lora_forward", linear_flops(s.N, C, lr->P * s.lora_r) + linear_flops(s.N, s.lora_r, OC));
  const float* x = inp;
  if (s.lora_dropout > 0) {  // the adapter sees drop(x); the base sees x
    drop_fwd(s, s.lora_xd, inp, C, lr->seed);
    x = s.lora_xd;
  }
  s.k->lora_forward(out, lr->u, x, lr->A, lr->B, s.N, C, OC, s.lora_r, lr->P, lr->parts, s.lora_scale);
}

// Every block-internal activation gradient has one writer, so it is SET, not zeroed
// and accumulated (saves a memset pass and a read per buffer).
// With an adapter, its gradients are SET or added as the linears' (s.param_grads) and
// its input gradient is added onto the base's; with dropout the dropped input is
// regenerated from the mask seed (nothing was stored) and the input gradient goes
// back through the same mask.
void linear_bwd(const BlockShape& s, float* dinp, float* dw, float* db, const float* dout, LinearIn in, int C,
                int OC, const LoraRef* lr = nullptr, const kernels::QuantWeight* qw = nullptr) {
  const float* inp = in.inp;
  const float* w = in.w;
  {
    ProfileScope scope(s.prof, qw ? "linear_backward_q" : "linear_backward", (dw ? 2 : 1) * linear_flops(s.N, C, OC));
    if (qw)  // a quantized base is frozen: no dw, db
      s.k->linear_backward_q(dinp, dout, qw, s.N, C, OC, kernels::Grad::set);
    else if (in.w16)
      s.k->linear16_backward(dinp, dw, db, dout, in.inp16 ? nullptr : inp, in.inp16, in.w16, s.N, C, OC,
                             kernels::Grad::set, s.param_grads);
    else
      s.k->linear_backward(dinp, dw, db, dout, inp, w, s.N, C, OC, kernels::Grad::set, s.param_grads);
  }
  if (!lr) return;
  ProfileScope scope(s.prof, "lora_backward", 2 * linear_flops(s.N, C, lr->P * s.lora_r) + 2 * linear_flops(s.N, s.lora_r, OC));
  if (s.lora_dropout > 0) {
    drop_fwd(s, s.lora_xd, inp, C, lr->seed);
    s.k->lora_backward(s.lora_dxd, lr->dA, lr->dB, s.lora_du, dout, s.lora_xd, lr->u, lr->A, lr->B, s.N, C, OC,
                       s.lora_r, lr->P, lr->parts, s.lora_scale, kernels::Grad::set, s.param_grads);
    drop_bwd(s, dinp, s.lora_dxd, C, lr->seed);
  } else {
    s.k->lora_backward(dinp, lr->dA, lr->dB, s.lora_du, dout, inp, lr->u, lr->A, lr->B, s.N, C, OC, s.lora_r, lr->P,
                       lr->parts, s.lora_scale, kernels::Grad::add, s.param_grads);
  }
}

void residual_timed(const BlockShape& s, float* dst, const float* src) {
  ProfileScope scope(s.prof, "residual_forward");
  s.k->accumulate(dst, src, static_cast<int64_t>(s.N) * s.C);
}

// MLP activation from the pre-activation `up`: (N, F) <- (N, F) or (N, 2F).
void mlp_act_forward(const BlockShape& s, float* act, const float* up) {
  {
    ProfileScope scope(s.prof, s.gpt2 ? "gelu_forward" : "swiglu_forward");
    if (s.gpt2)
      s.k->gelu_forward(act, up, static_cast<int64_t>(s.N) * s.F);
    else
      s.k->swiglu_forward(act, up, s.N, s.F);
  }
  keep16(s, "round_16", act, nullptr, static_cast<size_t>(s.N) * s.F);  // the down GEMM's input
}

// Rotates the q and k heads of every qkv row in place.
void rope_qk_forward(const BlockShape& s, float* qkv, const int32_t* pos) {
  ProfileScope scope(s.prof, "rope_forward");
  s.k->rope_forward(qkv, qkv, pos, s.N, s.QKV, s.NH, s.HS, s.inv_freq);
  float* kp = qkv + static_cast<size_t>(s.NH) * s.HS;
  s.k->rope_forward(kp, kp, pos, s.N, s.QKV, s.NKV, s.HS, s.inv_freq);
}

}  // namespace

namespace {

// The forward in two pieces that block_recompute reuses verbatim (same kernels, same
// order), which is what makes recomputed activations bit-identical.
// x_in -> ln1, qkv (rotated), att, lse.
// In mixed precision each saved tensor is rounded right after it is made (and its
// 16-bit copy stored when the layer keeps one), so every later kernel, here and in
// backward, reads exactly the rounded values.
void attention_half_forward(const BlockShape& s, const LayerTensors& w, const LayerActs& a, const float* x_in,
                            const int32_t* pos, const int32_t* seg) {
  const size_t N = static_cast<size_t>(s.N);
  norm_forward(s, a.ln1, a.mean1, a.rstd1, x_in, w.norm1_w, w.norm1_b);  // (N, C)
  keep16(s, "round_16", a.ln1, a.ln1_16, N * s.C);
  linear_fwd(s, a.qkv, {a.ln1, a.ln1_16, w.qkv_w, w.qkv_w16}, w.qkv_b, s.C, s.QKV, lora_of(w, LoraLinear::qkv), quant_of(w, LoraLinear::qkv));              // (N, QKV)
  if (!s.gpt2) rope_qk_forward(s, a.qkv, pos);
  keep16(s, "round_16", a.qkv, a.qkv_16, N * s.QKV);
  timed(s.prof, "attention_forward", 0, [&] {
    attention_fwd(s, a.att, a.lse, a.qkv, seg);  // (N, C), planned scratch
  });
  keep16(s, "round_16", a.att, a.att_16, N * s.C);
}
// att, x_in -> h, ln2, up (the MLP pre-activation).
void mlp_inputs_forward(const BlockShape& s, const LayerTensors& w, const LayerActs& a, const float* x_in) {
  const size_t N = static_cast<size_t>(s.N);
  const int up_cols = s.gpt2 ? s.F : 2 * s.F;
  linear_fwd(s, a.h, {a.att, a.att_16, w.proj_w, w.proj_w16}, w.proj_b, s.C, s.C, lora_of(w, LoraLinear::proj), quant_of(w, LoraLinear::proj));  // (N, C)
  residual_timed(s, a.h, x_in);                              // h = x + attn
  keep16(s, "round_16", a.h, a.h_16, N * s.C);
  norm_forward(s, a.ln2, a.mean2, a.rstd2, a.h, w.norm2_w, w.norm2_b);  // (N, C)
  keep16(s, "round_16", a.ln2, a.ln2_16, N * s.C);
  linear_fwd(s, a.up, {a.ln2, a.ln2_16, w.up_w, w.up_w16}, w.up_b, s.C, up_cols, lora_of(w, LoraLinear::up), quant_of(w, LoraLinear::up));             // (N, F|2F)
  keep16(s, "round_16", a.up, a.up_16, N * up_cols);
}

}  // namespace

void block_recompute(const BlockShape& s, Recompute mode, const LayerTensors& w, const LayerActs& a,
                     const float* x_in, const int32_t* pos, const int32_t* seg) {
  if (mode == Recompute::none) return;
  attention_half_forward(s, w, a, x_in, pos, seg);
  if (mode == Recompute::block) mlp_inputs_forward(s, w, a, x_in);  // the down projection is not needed
}

void block_forward(const BlockShape& s, const LayerTensors& w, const LayerActs& a, float* act,
                   const float* x_in, float* x_out, const int32_t* pos, const int32_t* seg) {
  attention_half_forward(s, w, a, x_in, pos, seg);
  mlp_inputs_forward(s, w, a, x_in);
  mlp_act_forward(s, act, a.up);                                          // (N, F)
  linear_fwd(s, x_out, {act, nullptr, w.down_w, w.down_w16}, w.down_b, s.F, s.C, lora_of(w, LoraLinear::down), quant_of(w, LoraLinear::down));              // (N, C)
  residual_timed(s, x_out, a.h);                                          // out = h + mlp
}

void block_backward(const BlockShape& s, const LayerTensors& w, const LayerTensors& g, const LayerActs& a,
                    const Activations& acts, const float* x_in, const int32_t* pos, const int32_t* seg) {
  const size_t N = static_cast<size_t>(s.N);
  const int up_cols = s.gpt2 ? s.F : 2 * s.F;
  float* dx = acts.dx;  // (N, C): dL/d(out) on entry; the residual passes it through unchanged
  // MLP half. The activation was not kept: recompute it from the saved pre-activation.
  mlp_act_forward(s, acts.act, a.up);
  linear_bwd(s, acts.dact, g.down_w, g.down_b, dx, {acts.act, nullptr, w.down_w, w.down_w16}, s.F, s.C, lora_of(w, LoraLinear::down), quant_of(w, LoraLinear::down));
  timed(s.prof, s.gpt2 ? "gelu_backward" : "swiglu_backward", 0, [&] {
    if (s.gpt2)
      s.k->gelu_backward(acts.dup, acts.dact, a.up, static_cast<int64_t>(N) * s.F, kernels::Grad::set);
    else
      s.k->swiglu_backward(acts.dup, acts.dact, a.up, s.N, s.F, kernels::Grad::set);
  });
  linear_bwd(s, acts.dln, g.up_w, g.up_b, acts.dup, {a.ln2, a.ln2_16, w.up_w, w.up_w16}, s.C, up_cols, lora_of(w, LoraLinear::up), quant_of(w, LoraLinear::up));
  norm_backward(s, dx, g.norm2_w, g.norm2_b, acts.dln, a.h, w.norm2_w, a.mean2, a.rstd2);  // dx = dL/dh
  // Attention half.
  linear_bwd(s, acts.datt, g.proj_w, g.proj_b, dx, {a.att, a.att_16, w.proj_w, w.proj_w16}, s.C, s.C, lora_of(w, LoraLinear::proj), quant_of(w, LoraLinear::proj));
  timed(s.prof, "attention_backward", 0, [&] {
    attention_bwd(s, acts.dqkv, acts.datt, a.qkv, a.att, a.lse, seg, kernels::Grad::set);
  });
  const float* dqkv = acts.dqkv;
  if (!s.gpt2) {
    // RoPE is a rotation: its backward rotates q and k gradients back; v passes through.
    ProfileScope scope(s.prof, "rope_backward");
    float* dr = acts.dqkv_rot;
    const size_t qk = static_cast<size_t>(s.NH + s.NKV) * s.HS, v = static_cast<size_t>(s.NKV) * s.HS;
    const size_t kq = static_cast<size_t>(s.NH) * s.HS;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; ++i) {
      std::memset(dr + i * s.QKV, 0, qk * sizeof(float));
      std::memcpy(dr + i * s.QKV + qk, acts.dqkv + i * s.QKV + qk, v * sizeof(float));
    }
    s.k->rope_backward(dr, acts.dqkv, pos, s.N, s.QKV, s.NH, s.HS, s.inv_freq);
    s.k->rope_backward(dr + kq, acts.dqkv + kq, pos, s.N, s.QKV, s.NKV, s.HS, s.inv_freq);
    dqkv = dr;
  }
  linear_bwd(s, acts.dln, g.qkv_w, g.qkv_b, dqkv, {a.ln1, a.ln1_16, w.qkv_w, w.qkv_w16}, s.C, s.QKV, lora_of(w, LoraLinear::qkv), quant_of(w, LoraLinear::qkv));
  norm_backward(s, dx, g.norm1_w, g.norm1_b, acts.dln, x_in, w.norm1_w, a.mean1, a.rstd1);  // dx = dL/dx_in
}

}  // namespace teddy::model_detail
