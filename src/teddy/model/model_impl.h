#pragma once
// Private to model/: where each tensor lives (parameter offsets, activation arena
// views) and the transformer block's forward and backward.
#include <cstddef>
#include <array>
#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/core/profiler.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/context.h"
#include "teddy/model/model.h"

namespace teddy::model_detail {

constexpr size_t kAbsent = static_cast<size_t>(-1);

// Offsets (in floats) of one block's tensors in the flat buffer; kAbsent if the
// family has no such tensor (biases).
struct LayerOffsets {
  size_t norm1_w = kAbsent, norm1_b = kAbsent, qkv_w = kAbsent, qkv_b = kAbsent;
  size_t proj_w = kAbsent, proj_b = kAbsent, norm2_w = kAbsent, norm2_b = kAbsent;
  size_t up_w = kAbsent, up_b = kAbsent, down_w = kAbsent, down_b = kAbsent;
};

struct ParamOffsets {
  size_t tok_emb = kAbsent, pos_emb = kAbsent, final_w = kAbsent, final_b = kAbsent;
  size_t lm_head = kAbsent;  // == tok_emb when tied
  std::vector<LayerOffsets> layers;
};
ParamOffsets resolve_offsets(const ModelConfig& cfg, const ParamLayout& layout);

inline float* at(float* base, size_t off) { return off == kAbsent ? nullptr : base + off; }

// One linear's adapter in one block (model/lora.h): A nullptr = not adapted.
struct LoraRef {
  const float* A = nullptr;  // (P*r, in) parameters
  const float* B = nullptr;  // (sum rows, r)
  float* dA = nullptr;       // their gradients (nullptr in forward-only calls)
  float* dB = nullptr;
  float* u = nullptr;        // (N, P*r) saved x A^T of this layer
  const int* parts = nullptr;  // {off, n} per part
  int P = 0;
  uint64_t seed = 0;         // dropout mask seed of this (micro-batch, layer, linear)
};

// One block's tensors resolved against a flat buffer (parameters or gradients).
// `lora` (parameters only): the block's four adapters indexed by LoraLinear, or nullptr.
struct LayerTensors {
  float *norm1_w, *norm1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
  float *norm2_w, *norm2_b, *up_w, *up_b, *down_w, *down_b;
  const LoraRef* lora = nullptr;
  // QLoRA: the four linear weights (LoraLinear order) stored quantized; the fp32
  // pointers of those are then nullptr.
  const kernels::QuantWeight* q = nullptr;
  // bf16 GEMMs (BlockShape::gemm16): the four linear weights' bf16 copies (Model's
  // refreshed weight copy); nullptr otherwise.
  const uint16_t *qkv_w16 = nullptr, *proj_w16 = nullptr, *up_w16 = nullptr, *down_w16 = nullptr;
};
LayerTensors resolve_layer(float* base, const LayerOffsets& o);
// A frozen base's gradient "tensors": no linear gradients (nullptr: the GEMMs skip
// them) and the norms' weight gradients into `sink` (2*C floats, never read).
LayerTensors frozen_layer_grads(float* sink, int C, bool norm_bias);

// What one block saves in forward for its backward. N rows = B*T.
struct LayerActs {
  float* ln1;    // (N, C) norm1 output = qkv input
  float* mean1;  // (N) LayerNorm only
  float* rstd1;  // (N)
  float* qkv;    // (N, QKV) after RoPE (LLaMA)
  float* att;    // (N, C) attention output = proj input
  float* lse;    // (B, NH, T)
  float* h;      // (N, C) residual after attention = norm2 input
  float* ln2;    // (N, C)
  float* mean2;  // (N)
  float* rstd2;  // (N)
  float* up;     // (N, F) GPT-2 / (N, 2F) LLaMA: MLP pre-activation
  // Mixed precision: the 16-bit copies kept per layer of ln1, qkv, att, h, ln2 and up
  // (nullptr in fp32 and for what the recompute mode drops). The float views above then
  // point into one block's worth of shared fp32 scratch: forward computes there and
  // rounds into these; backward widens these back into it.
  uint16_t *ln1_16 = nullptr, *qkv_16 = nullptr, *att_16 = nullptr;
  uint16_t *h_16 = nullptr, *ln2_16 = nullptr, *up_16 = nullptr;
};

// Views into the activation arena for up to `rows` rows.
struct Activations {
  int rows = 0;      // capacity in rows (B*T)
  int cls_rows = 0;  // classifier chunk rows
  size_t saved_bytes = 0;  // arena bytes the layers keep for backward (per-layer tensors and residual stream)
  int32_t* pos = nullptr;         // (N) positions used (Batch.pos or 0..T-1)
  std::vector<float*> resid;      // n_layer+1 of (N, C): block inputs, then the last output
  // Mixed precision: the residual stream is kept as n_layer+1 16-bit tensors, and
  // resid[l] alternates between two fp32 buffers (block l reads one, writes the other).
  std::vector<uint16_t*> resid16;
  Precision precision = Precision::fp32;
  std::vector<LayerActs> layers;
  float* act = nullptr;           // (N, F) MLP activation, shared (recomputed in backward)
  float *lnf = nullptr, *meanf = nullptr, *rstdf = nullptr;  // final norm (N, C), (N), (N)
  float* logits = nullptr;        // (cls_rows, Vp) one classifier chunk (dlogits in place)
  float* losses = nullptr;        // (N)
  // Activation gradients, reused by every block. Each has one producer that SETS it
  // (kernels::Grad::set), except dx (zeroed, then the norms' backward adds into it)
  // and LLaMA's dqkv_rot (filled by a copy, then RoPE's backward adds into it).
  float *dx = nullptr;     // (N, C) gradient of the residual stream
  float *dln = nullptr;    // (N, C) gradient of a norm output
  float *datt = nullptr;   // (N, C)
  float *dqkv = nullptr;   // (N, QKV)
  float *dqkv_rot = nullptr;  // (N, QKV) LLaMA: dqkv before RoPE
  float *dact = nullptr;   // (N, F)
  float *dup = nullptr;    // (N, F or 2F)
  // FlashAttention scratch planned once (see attention_scratch_floats), so the hot
  // path neither allocates nor page-faults per call.
  float* attn_scratch = nullptr;
  size_t attn_scratch_floats = 0;
  // LoRA: per layer, each linear's saved u = x A^T (N, P*r) (nullptr: not adapted);
  // shared scratch for the dropped-out input and its gradient (N, max(C, F), only
  // with dropout) and du (N, max P*r).
  std::vector<std::array<float*, 4>> lora_u;
  float *lora_xd = nullptr, *lora_dxd = nullptr, *lora_du = nullptr;
  // Dropout masks are indexed by global position: element (sample b, position t,
  // feature c) of a linear's input draws index ((lora_sample0 + b) * lora_stride_t + t)
  // * width + c, so a step's rows draw the same masks however they are split over
  // micro-batches and ranks (lora_stride_t = max_seq_len).
  uint64_t lora_sample0 = 0;
  int lora_stride_t = 0;
};
// What LoRA adds to the arena: rank, parts per linear (0: not adapted), dropout.
struct LoraArena {
  int r = 0;
  std::array<int, 4> parts{};
  bool dropout = false;
};
// Takes every view from `arena` in a fixed order (a counting pass when the arena is
// not allocated yet). With recomputation, the tensors a mode drops point, for every
// layer, into one shared block's worth of scratch.
// The attention workspace is sized by ctx's backend.
void carve_activations(Arena& arena, const ModelConfig& cfg, int rows, Activations& a, Recompute recompute,
                       Precision precision, const Context& ctx, const LoraArena& lora = {});
// Rows per classifier chunk for up to `rows` rows: as few chunks as the logits bound
// allows, all about the same size (1024 rows as 320+320+320+64 would run the last
// GEMMs on a thin tail); even_chunk_rows(N, max) splits N rows that way.
int classifier_chunk_rows(const ModelConfig& cfg, int rows);
int even_chunk_rows(int N, int max_rows);

// Static shape of one block call, the backend its kernels run on, and where their
// times go (prof nullptr: nowhere).
struct BlockShape {
  const kernels::Backend* k = nullptr;  // the model's Context::backend
  int B, T, N, C, NH, NKV, HS, QKV, F;
  bool gpt2;
  float eps;
  const double* inv_freq = nullptr;  // LLaMA: RoPE's (HS/2) inverse frequencies (Model::rope_inv_freq)
  Profiler* prof = nullptr;
  float* attn_scratch = nullptr;  // Activations::attn_scratch (nullptr: kernels allocate)
  size_t attn_scratch_floats = 0;
  DType prec = DType::f32;  // f32: no rounding; bf16/f16: saved tensors and GEMM inputs rounded
  kernels::Grad param_grads = kernels::Grad::add;  // set: the linears overwrite their parameter gradients
  // bf16 GEMMs (prec bf16 on a table whose gemm_inputs is bf16, no LoRA): the linears
  // go through linear16_* with the weights' bf16 copies (LayerTensors::*_w16) and the
  // saved 16-bit inputs as they are; ln1 and ln2 are then not widened in backward
  // (only GEMMs read them).
  bool gemm16 = false;
  // LoRA (LayerTensors::lora): rank, scale, dropout probability (0 outside training)
  // and the scratch of Activations.
  int lora_r = 0;
  float lora_scale = 0, lora_dropout = 0;
  float *lora_xd = nullptr, *lora_dxd = nullptr, *lora_du = nullptr;
  // Dropout masks are indexed by global position: element (sample b, position t,
  // feature c) of a linear's input draws index ((lora_sample0 + b) * lora_stride_t + t)
  // * width + c, so a step's rows draw the same masks however they are split over
  // micro-batches and ranks (lora_stride_t = max_seq_len).
  uint64_t lora_sample0 = 0;
  int lora_stride_t = 0;
};

// Runs f() inside a ProfileScope (one branch when prof is nullptr).
template <class F>
void timed(Profiler* prof, const char* name, double flops, F&& f) {
  ProfileScope scope(prof, name, flops);
  f();
}
// FLOPs of linear_forward (2*N*C*OC); linear_backward does twice that with dinp.
inline double linear_flops(int N, int C, int OC) { return 2.0 * N * C * OC; }
// inv_freq: the model's RoPE table (Model::rope_inv_freq; required for LLaMA).
BlockShape block_shape(const ModelConfig& cfg, int B, int T, const kernels::Backend& k, const double* inv_freq,
                       Profiler* prof = nullptr);

// x_out = block(x_in), saving into `a`. `act` is the (N, F) shared activation scratch.
void block_forward(const BlockShape& s, const LayerTensors& w, const LayerActs& a, float* act,
                   const float* x_in, float* x_out, const int32_t* pos, const int32_t* seg);
// Rebuilds in `a` what `mode` dropped (attention: ln1, mean1, rstd1, qkv, att, lse;
// block: also h, ln2, mean2, rstd2, up) from the block input, with the forward's own
// kernels, so the values are bit-identical. No-op for Recompute::none.
void block_recompute(const BlockShape& s, Recompute mode, const LayerTensors& w, const LayerActs& a,
                     const float* x_in, const int32_t* pos, const int32_t* seg);
// Mixed precision: widens what block l kept in 16 bits (its LayerActs copies and its
// input resid16[l]) into the fp32 views, before block_recompute / block_backward.
void block_widen(const BlockShape& s, const Activations& acts, int l);
// Rounds x (n floats) to s.prec in place, storing the 16-bit patterns in `bits` when
// non-null: every saved tensor and GEMM input goes through this in forward.
void keep16(const BlockShape& s, const char* what, float* x, uint16_t* bits, size_t n);
// On entry acts.dx holds dL/dx_out; on exit dL/dx_in. Parameter gradients ADD into g
// (the linears' SET instead when s.param_grads is Grad::set; the norms' always add).
void block_backward(const BlockShape& s, const LayerTensors& w, const LayerTensors& g, const LayerActs& a,
                    const Activations& acts, const float* x_in, const int32_t* pos, const int32_t* seg);

// LayerNorm (GPT-2) or RMSNorm (LLaMA).
void norm_forward(const BlockShape& s, float* out, float* mean, float* rstd, const float* inp,
                  const float* w, const float* b);
void norm_backward(const BlockShape& s, float* dinp, float* dw, float* db, const float* dout,
                   const float* inp, const float* w, const float* mean, const float* rstd);

// Parallel memset to 0.
void zero_floats(float* p, size_t n);

// Attention workspace to plan for up to `rows` rows (T = min(rows, max_seq_len)) with
// every hardware thread (or ctx.threads if more), from ctx's backend; the op allocates
// its own when a call needs more (other shapes, more threads).
size_t attention_scratch_floats(const ModelConfig& cfg, int rows, const Context& ctx);
void attention_fwd(const BlockShape& s, float* out, float* lse, const float* qkv, const int32_t* seg);
// dqkv = (mode set) or += (add) the attention gradient.
void attention_bwd(const BlockShape& s, float* dqkv, const float* dout, const float* qkv, const float* out,
                   const float* lse, const int32_t* seg, kernels::Grad mode);

}  // namespace teddy::model_detail
