// Parameter naming and order (one flat buffer; offsets in floats, each aligned to
// 16 floats = 64 bytes). C = d_model, Vp = padded_vocab_size, NH/NKV heads, HS head_dim,
// F = d_ff. "(+b)" marks a bias of the out dimension, present when cfg.bias (linears)
// or for GPT-2's LayerNorm (norms); LLaMA's RMSNorm has no bias.
//
//   tok_emb.weight                 (Vp, C)   rows >= vocab_size are padding (kept 0)
//   pos_emb.weight                 (max_seq_len, C)          GPT-2 only
//   for each block i = 0 .. n_layer-1, contiguous:
//     layers.i.norm1.weight        (C)  (+b)
//     layers.i.attn.qkv.weight     ((NH + 2*NKV)*HS, C)  rows [q heads | k heads | v heads] (+b; also
//                                  when cfg.qkv_bias: Qwen2's q/k/v biases)
//     layers.i.attn.proj.weight    (C, NH*HS)  (+b)
//     layers.i.norm2.weight        (C)  (+b)
//     layers.i.mlp.up.weight       GPT-2 (F, C); LLaMA (2F, C) rows [gate; up]  (+b)
//     layers.i.mlp.down.weight     (C, F)  (+b)
//   final_norm.weight              (C)  (+b)
//   lm_head.weight                 (Vp, C)   only when !tie_embeddings
//
// Weight decay: every matrix (embeddings and lm_head included, like nanoGPT's
// "params with dim >= 2 decay") decays; norm weights and biases do not.
#include <string>

#include "teddy/core/buffer.h"
#include "teddy/core/error.h"
#include "teddy/model/model.h"

namespace teddy {

namespace {

constexpr size_t kParamAlignFloats = kAlignBytes / sizeof(float);  // 16

struct LayoutBuilder {
  ParamLayout out;
  void add(std::string name, std::vector<int64_t> shape, bool decay, int layer) {
    size_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<size_t>(d);
    ParamInfo p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.offset = align_up(out.total, kParamAlignFloats);
    p.numel = numel;
    p.decay = decay;
    p.layer = layer;
    out.total = p.offset + numel;
    out.params.push_back(std::move(p));
  }
};

}  // namespace

const ParamInfo& ParamLayout::find(std::string_view name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return p;
  throw Error("parameter \"" + std::string(name) + "\" not in the model's layout");
}

size_t ParamLayout::count() const {
  size_t n = 0;
  for (const ParamInfo& p : params) n += p.numel;
  return n;
}

ParamLayout make_param_layout(const ModelConfig& cfg) {
  cfg.validate();
  const int64_t C = cfg.d_model, Vp = cfg.padded_vocab_size, F = cfg.d_ff;
  const bool gpt2 = cfg.family == Family::gpt2;
  const bool norm_bias = gpt2;  // LayerNorm has a bias, RMSNorm does not
  const int64_t up_rows = gpt2 ? F : 2 * F;
  LayoutBuilder b;
  b.add("tok_emb.weight", {Vp, C}, true, -1);
  if (gpt2) b.add("pos_emb.weight", {cfg.max_seq_len, C}, true, -1);
  auto linear = [&](const std::string& name, int64_t out, int64_t in, int layer, bool bias) {
    b.add(name + ".weight", {out, in}, true, layer);
    if (bias) b.add(name + ".bias", {out}, false, layer);
  };
  auto norm = [&](const std::string& name, int layer) {
    b.add(name + ".weight", {C}, false, layer);
    if (norm_bias) b.add(name + ".bias", {C}, false, layer);
  };
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    norm(p + "norm1", i);
    linear(p + "attn.qkv", cfg.qkv_dim(), C, i, cfg.has_qkv_bias());
    linear(p + "attn.proj", C, static_cast<int64_t>(cfg.n_head) * cfg.head_dim(), i, cfg.bias);
    norm(p + "norm2", i);
    linear(p + "mlp.up", up_rows, C, i, cfg.bias);
    linear(p + "mlp.down", C, F, i, cfg.bias);
  }
  norm("final_norm", -1);
  if (!cfg.tie_embeddings) b.add("lm_head.weight", {Vp, C}, true, -1);
  b.out.total = align_up(b.out.total, kParamAlignFloats);
  return std::move(b.out);
}

}  // namespace teddy
