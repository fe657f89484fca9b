#include "teddy/model/kv_decoder.h"

#include <omp.h>

#include <cstring>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/model/kv_attention.h"

namespace teddy {

using namespace model_detail;

namespace {
ParamOffsets decoder_offsets(const Model& model) {
  return resolve_offsets(model.config(), model.base_layout());  // with LoRA: the frozen base's
}
}  // namespace

KvDecoder::KvDecoder(Model& model, int capacity, int max_rows)
    : model_(model), off_(decoder_offsets(model)), cap_(capacity), max_rows_(max_rows) {
  const ModelConfig& cfg = model.config();
  if (capacity <= 0 || capacity > cfg.max_seq_len)
    throw Error("kv cache: capacity must be in [1, max_seq_len=" + std::to_string(cfg.max_seq_len) + "] (got " +
                std::to_string(capacity) + ")");
  if (max_rows <= 0 || max_rows > capacity)
    throw Error("kv cache: max_rows must be in [1, capacity] (got " + std::to_string(max_rows) + ")");
  n_threads_ = model.context().threads > 0 ? model.context().threads : omp_get_max_threads();
  const size_t kv = static_cast<size_t>(cfg.n_kv_head) * cfg.head_dim();
  cache_.resize(static_cast<size_t>(cfg.n_layer) * 2 * cap_ * kv * sizeof(float),
                "the KV cache for " + std::to_string(cap_) + " positions");
  if (const LoraConfig* l = model.lora()) {
    adapters_.assign(cfg.n_layer, {});
    for (const LoraSite& site : model.lora_sites()) part_cols_.push_back(site.part_cols());
    for (int li = 0; li < cfg.n_layer; ++li) {
      size_t si = 0;
      for (const LoraSite& site : model.lora_sites()) {
        const std::string n = "layers." + std::to_string(li) + "." + site.name;
        Adapter& ad = adapters_[li][static_cast<int>(site.linear)];
        ad.a = model.layout().find(n + ".lora_A").offset;
        ad.b = model.layout().find(n + ".lora_B").offset;
        ad.parts = part_cols_[si++].data();
        ad.P = static_cast<int>(site.parts.size());
      }
    }
    (void)l;
  }
  carve(scratch_);  // counting pass
  scratch_.allocate_counted("the decoder's activations");
  carve(scratch_);
}

void KvDecoder::linear(float* out, const float* in, const float* w, const float* b, int n, int C, int OC, int layer,
                       LoraLinear which) {
  const kernels::Backend& k = model_.context().ops();
  if (const kernels::QuantWeight* q = model_.base_quant(layer, which))
    k.linear_forward_q(out, in, q, b, n, C, OC);
  else
    k.linear_forward(out, in, w, b, n, C, OC);
  if (adapters_.empty()) return;
  const Adapter& ad = adapters_[layer][static_cast<int>(which)];
  if (ad.P == 0) return;
  const LoraConfig* l = model_.lora();
  k.lora_forward(out, lora_u_, in, model_.params() + ad.a, model_.params() + ad.b, n, C, OC, l->r, ad.P, ad.parts,
                 l->scale());
}

void KvDecoder::carve(Arena& a) {
  a.reset();
  const ModelConfig& cfg = model_.config();
  const size_t R = max_rows_, C = cfg.d_model, F = cfg.d_ff;
  const size_t up = cfg.family == Family::gpt2 ? F : 2 * F;
  pos_ = a.take<int32_t>(R);
  x_ = a.take<float>(R * C);
  ln_ = a.take<float>(R * C);
  mean_ = a.take<float>(R);
  rstd_ = a.take<float>(R);
  qkv_ = a.take<float>(R * cfg.qkv_dim());
  lora_u_ = model_.lora() ? a.take<float>(R * 3 * model_.lora()->r) : nullptr;
  att_ = a.take<float>(R * C);
  tmp_ = a.take<float>(R * C);
  up_ = a.take<float>(R * up);
  act_ = a.take<float>(R * F);
  logits_ = a.take<float>(cfg.padded_vocab_size);
  scores_ = a.take<float>(static_cast<size_t>(n_threads_) * cap_);
}

const float* KvDecoder::feed(const int32_t* tokens, int n) {
  const ModelConfig& cfg = model_.config();
  if (n <= 0 || n > max_rows_)
    throw Error("kv cache: feed takes 1.." + std::to_string(max_rows_) + " tokens (got " + std::to_string(n) + ")");
  if (len_ + n > cap_)
    throw Error("kv cache: full (" + std::to_string(cap_) + " positions; " + std::to_string(len_ + n) + " needed)");
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= cfg.vocab_size)
      throw Error("kv cache: token " + std::to_string(tokens[i]) + " outside [0, " + std::to_string(cfg.vocab_size) + ")");
    pos_[i] = len_ + i;
  }
  const ThreadScope threads(model_.context());
  const kernels::Backend& k = model_.context().ops();
  const BlockShape s = block_shape(cfg, 1, n, k, model_.rope_inv_freq().data());
  const size_t kvw = static_cast<size_t>(s.NKV) * s.HS;   // one cached row
  const size_t qk = static_cast<size_t>(s.NH) * s.HS;     // k offset in a qkv row
  const int64_t NC = static_cast<int64_t>(n) * s.C;
  const int up_cols = s.gpt2 ? s.F : 2 * s.F;
  float* P = model_.base_params();
  if (const kernels::QuantWeight* e = model_.base_embedding())
    kernels::encoder_forward_q(x_, tokens, pos_, *e, at(P, off_.pos_emb), n, s.C);  // bf16 table (QLoRA)
  else
    k.encoder_forward(x_, tokens, pos_, P + off_.tok_emb, at(P, off_.pos_emb), n, s.C);  // (n, C)
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerTensors w = resolve_layer(P, off_.layers[l]);
    float* kc = cache_.as<float>() + static_cast<size_t>(l) * 2 * cap_ * kvw;  // (cap, NKV*HS)
    float* vc = kc + static_cast<size_t>(cap_) * kvw;
    norm_forward(s, ln_, mean_, rstd_, x_, w.norm1_w, w.norm1_b);
    linear(qkv_, ln_, w.qkv_w, w.qkv_b, n, s.C, s.QKV, l, LoraLinear::qkv);  // (n, QKV)
    if (!s.gpt2) {
      k.rope_forward(qkv_, qkv_, pos_, n, s.QKV, s.NH, s.HS, s.inv_freq);
      k.rope_forward(qkv_ + qk, qkv_ + qk, pos_, n, s.QKV, s.NKV, s.HS, s.inv_freq);
    }
    for (int i = 0; i < n; ++i) {
      const float* row = qkv_ + static_cast<size_t>(i) * s.QKV;
      std::memcpy(kc + static_cast<size_t>(len_ + i) * kvw, row + qk, kvw * sizeof(float));
      std::memcpy(vc + static_cast<size_t>(len_ + i) * kvw, row + qk + kvw, kvw * sizeof(float));
    }
    kv_attention_forward(att_, qkv_, s.QKV, kc, vc, static_cast<int>(kvw), n, len_, s.NH, s.NKV, s.HS, scores_, cap_,
                         n_threads_);
    linear(tmp_, att_, w.proj_w, w.proj_b, n, s.C, s.C, l, LoraLinear::proj);
    k.accumulate(x_, tmp_, NC);
    norm_forward(s, ln_, mean_, rstd_, x_, w.norm2_w, w.norm2_b);
    linear(up_, ln_, w.up_w, w.up_b, n, s.C, up_cols, l, LoraLinear::up);
    if (s.gpt2)
      k.gelu_forward(act_, up_, static_cast<int64_t>(n) * s.F);
    else
      k.swiglu_forward(act_, up_, n, s.F);
    linear(tmp_, act_, w.down_w, w.down_b, n, s.F, s.C, l, LoraLinear::down);
    k.accumulate(x_, tmp_, NC);
  }
  len_ += n;
  // Only the last row's logits are needed.
  const BlockShape s1 = block_shape(cfg, 1, 1, k, model_.rope_inv_freq().data());
  const float* last = x_ + static_cast<size_t>(n - 1) * s.C;
  norm_forward(s1, ln_, mean_, rstd_, last, at(P, off_.final_w), at(P, off_.final_b));
  if (const kernels::QuantWeight* h = model_.base_head())
    k.linear_forward_q(logits_, ln_, h, nullptr, 1, s.C, cfg.padded_vocab_size);
  else
    k.linear_forward(logits_, ln_, P + off_.lm_head, nullptr, 1, s.C, cfg.padded_vocab_size);
  return logits_;
}

}  // namespace teddy
