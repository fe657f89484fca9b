// Where tensors live: parameter offsets by role, and the activation arena's views.
#include <cstdint>
#include <algorithm>
#include <string>

#include "teddy/model/model_impl.h"

namespace teddy::model_detail {

namespace {

size_t offset_or_absent(const ParamLayout& layout, const std::string& name) {
  for (const ParamInfo& p : layout.params)
    if (p.name == name) return p.offset;
  return kAbsent;
}

}  // namespace

ParamOffsets resolve_offsets(const ModelConfig& cfg, const ParamLayout& layout) {
  ParamOffsets o;
  o.tok_emb = offset_or_absent(layout, "tok_emb.weight");  // absent: stored in 16 bits (QLoRA)
  o.pos_emb = offset_or_absent(layout, "pos_emb.weight");
  o.final_w = layout.find("final_norm.weight").offset;
  o.final_b = offset_or_absent(layout, "final_norm.bias");
  o.lm_head = cfg.tie_embeddings ? o.tok_emb : offset_or_absent(layout, "lm_head.weight");
  o.layers.resize(cfg.n_layer);
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    LayerOffsets& l = o.layers[i];
    l.norm1_w = layout.find(p + "norm1.weight").offset;
    l.norm1_b = offset_or_absent(layout, p + "norm1.bias");
    l.qkv_w = offset_or_absent(layout, p + "attn.qkv.weight");  // absent: stored quantized (QLoRA)
    l.qkv_b = offset_or_absent(layout, p + "attn.qkv.bias");
    l.proj_w = offset_or_absent(layout, p + "attn.proj.weight");
    l.proj_b = offset_or_absent(layout, p + "attn.proj.bias");
    l.norm2_w = layout.find(p + "norm2.weight").offset;
    l.norm2_b = offset_or_absent(layout, p + "norm2.bias");
    l.up_w = offset_or_absent(layout, p + "mlp.up.weight");
    l.up_b = offset_or_absent(layout, p + "mlp.up.bias");
    l.down_w = offset_or_absent(layout, p + "mlp.down.weight");
    l.down_b = offset_or_absent(layout, p + "mlp.down.bias");
  }
  return o;
}

LayerTensors frozen_layer_grads(float* sink, int C, bool norm_bias) {
  LayerTensors g{};
  g.norm1_w = g.norm2_w = sink;  // the norm kernels add into these; nothing reads them
  if (norm_bias) g.norm1_b = g.norm2_b = sink + C;
  return g;
}

LayerTensors resolve_layer(float* base, const LayerOffsets& o) {
  return LayerTensors{at(base, o.norm1_w), at(base, o.norm1_b), at(base, o.qkv_w),  at(base, o.qkv_b),
                      at(base, o.proj_w),  at(base, o.proj_b),  at(base, o.norm2_w), at(base, o.norm2_b),
                      at(base, o.up_w),    at(base, o.up_b),    at(base, o.down_w),  at(base, o.down_b)};
}

int even_chunk_rows(int N, int max_rows) {
  // In 64 bits: the planner's micro-batch search reaches N near 2^31, where N + max_rows
  // overflowed int (undefined behaviour; UBSan caught it in `teddy plan --model llama-1B`).
  const int64_t n = N, m = max_rows;
  const int64_t chunks = (n + m - 1) / m;
  const int64_t r = (n + chunks - 1) / chunks;
  return static_cast<int>(std::min(m, (r + 15) / 16 * 16));
}

int classifier_chunk_rows(const ModelConfig& cfg, int rows) {
  // Bound one logits chunk to ~32M floats (128 MiB) and at most 1024 rows; at least 64
  // rows so the dW GEMM keeps a useful inner dimension. Each chunk re-reads and
  // re-writes the whole (Vp, C) head gradient, so fewer, taller chunks pay: for GPT-2
  // 124M at 1024 rows, 2 chunks of 512 run the head's GEMMs ~13% faster than 4 of 256.
  constexpr size_t kMaxFloats = size_t{1} << 25;
  size_t r = kMaxFloats / static_cast<size_t>(cfg.padded_vocab_size);
  r = std::clamp<size_t>(r / 64 * 64, 64, 1024);
  if (rows <= 0) return static_cast<int>(r);
  return std::min(even_chunk_rows(rows, static_cast<int>(r)), rows);
}

void carve_activations(Arena& arena, const ModelConfig& cfg, int rows, Activations& a, Recompute recompute,
                       Precision precision, const Context& ctx, const LoraArena& lora) {
  const size_t N = static_cast<size_t>(rows), C = cfg.d_model, F = cfg.d_ff;
  const size_t QKV = cfg.qkv_dim(), NH = cfg.n_head;
  const size_t up = cfg.family == Family::gpt2 ? F : 2 * F;
  const bool layernorm = cfg.family == Family::gpt2;
  const bool half = precision != Precision::fp32;
  a.rows = rows;
  a.cls_rows = classifier_chunk_rows(cfg, rows);
  a.precision = precision;
  a.pos = arena.take<int32_t>(N);
  a.resid.assign(cfg.n_layer + 1, nullptr);
  a.resid16.assign(half ? cfg.n_layer + 1 : 0, nullptr);
  a.layers.assign(cfg.n_layer, LayerActs{});
  float* xbuf[2] = {nullptr, nullptr};  // mixed precision: the two fp32 residual buffers
  if (half) {
    xbuf[0] = arena.take<float>(N * C);
    xbuf[1] = arena.take<float>(N * C);
    a.resid[0] = xbuf[0];
    a.resid16[0] = arena.take<uint16_t>(N * C);
  } else {
    a.resid[0] = arena.take<float>(N * C);
  }
  // What a block saves, split into its attention half and its MLP half; a half the
  // recompute mode drops is carved once (shared scratch) instead of per layer. In
  // mixed precision the big tensors of both halves are always shared fp32 scratch, and
  // a kept half stores 16-bit copies per layer (norm statistics and logsumexp stay fp32).
  auto attn_big = [&](LayerActs& x) {
    x.ln1 = arena.take<float>(N * C);
    x.qkv = arena.take<float>(N * QKV);
    x.att = arena.take<float>(N * C);
  };
  auto attn_stats = [&](LayerActs& x) {
    x.mean1 = layernorm ? arena.take<float>(N) : nullptr;
    x.rstd1 = arena.take<float>(N);
    x.lse = arena.take<float>(N * NH);
  };
  auto attn_16 = [&](LayerActs& x) {
    x.ln1_16 = arena.take<uint16_t>(N * C);
    x.qkv_16 = arena.take<uint16_t>(N * QKV);
    x.att_16 = arena.take<uint16_t>(N * C);
  };
  auto mlp_big = [&](LayerActs& x) {
    x.h = arena.take<float>(N * C);
    x.ln2 = arena.take<float>(N * C);
    x.up = arena.take<float>(N * up);
  };
  auto mlp_stats = [&](LayerActs& x) {
    x.mean2 = layernorm ? arena.take<float>(N) : nullptr;
    x.rstd2 = arena.take<float>(N);
  };
  auto mlp_16 = [&](LayerActs& x) {
    x.h_16 = arena.take<uint16_t>(N * C);
    x.ln2_16 = arena.take<uint16_t>(N * C);
    x.up_16 = arena.take<uint16_t>(N * up);
  };
  const bool keep_attn = recompute == Recompute::none, keep_mlp = recompute != Recompute::block;
  LayerActs shared{};
  if (half || !keep_attn) attn_big(shared);
  if (!keep_attn) attn_stats(shared);
  if (half || !keep_mlp) mlp_big(shared);
  if (!keep_mlp) mlp_stats(shared);
  const size_t before_layers = arena.used();
  for (int l = 0; l < cfg.n_layer; ++l) {
    LayerActs& x = a.layers[l];
    x = shared;
    if (keep_attn) {
      if (half) attn_16(x); else attn_big(x);
      attn_stats(x);
    }
    if (keep_mlp) {
      if (half) mlp_16(x); else mlp_big(x);
      mlp_stats(x);
    }
    if (half) {
      a.resid[l + 1] = xbuf[(l + 1) % 2];
      a.resid16[l + 1] = arena.take<uint16_t>(N * C);
    } else {
      a.resid[l + 1] = arena.take<float>(N * C);
    }
  }
  a.saved_bytes = arena.used() - before_layers;
  a.act = arena.take<float>(N * F);
  a.lnf = arena.take<float>(N * C);
  a.meanf = layernorm ? arena.take<float>(N) : nullptr;
  a.rstdf = arena.take<float>(N);
  a.logits = arena.take<float>(static_cast<size_t>(a.cls_rows) * cfg.padded_vocab_size);
  a.losses = arena.take<float>(N);
  a.dx = arena.take<float>(N * C);
  a.dln = arena.take<float>(N * C);
  a.datt = arena.take<float>(N * C);
  a.dqkv = arena.take<float>(N * QKV);
  a.dqkv_rot = layernorm ? nullptr : arena.take<float>(N * QKV);
  a.dact = arena.take<float>(N * F);
  a.dup = arena.take<float>(N * up);
  a.attn_scratch_floats = attention_scratch_floats(cfg, rows, ctx);
  a.attn_scratch = arena.take<float>(a.attn_scratch_floats);
  a.lora_u.assign(lora.r > 0 ? cfg.n_layer : 0, std::array<float*, 4>{});
  if (lora.r > 0) {
    int max_cols = 0;
    for (int l = 0; l < cfg.n_layer; ++l)
      for (int i = 0; i < 4; ++i)
        if (lora.parts[i] > 0) a.lora_u[l][i] = arena.take<float>(N * lora.parts[i] * lora.r);
    for (int i = 0; i < 4; ++i) max_cols = std::max(max_cols, lora.parts[i] * lora.r);
    a.lora_du = arena.take<float>(N * max_cols);
    if (lora.dropout) {
      a.lora_xd = arena.take<float>(N * std::max(C, F));
      a.lora_dxd = arena.take<float>(N * std::max(C, F));
    }
  }
}

}  // namespace teddy::model_detail
