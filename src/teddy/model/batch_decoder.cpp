#include "teddy/model/batch_decoder.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/model/kv_attention.h"

namespace teddy {

using namespace model_detail;

BatchDecoder::BatchDecoder(Model& model, int n_seq, int capacity, int max_rows, std::vector<const float*> adapters)
    : model_(model),
      off_(resolve_offsets(model.config(), model.base_layout())),  // with LoRA: the frozen base's
      n_seq_(n_seq),
      cap_(capacity),
      max_rows_(max_rows),
      adapter_sets_(std::move(adapters)) {
  const ModelConfig& cfg = model.config();
  if (n_seq <= 0) throw Error("kv cache: the number of sequences must be >= 1 (got " + std::to_string(n_seq) + ")");
  if (capacity <= 0 || capacity > cfg.max_seq_len)
    throw Error("kv cache: capacity must be in [1, max_seq_len=" + std::to_string(cfg.max_seq_len) + "] (got " +
                std::to_string(capacity) + ")");
  if (max_rows <= 0 || max_rows > std::max(capacity, n_seq))
    throw Error("kv cache: max_rows must be in [1, max(capacity, sequences)] (got " + std::to_string(max_rows) + ")");
  if (!adapter_sets_.empty() && !model.lora())
    throw Error("kv cache: adapters given for a model without LoRA (enable it, or load an adapter, first)");
  for (const float* a : adapter_sets_)
    if (!a) throw Error("kv cache: an adapter buffer is null");
  segs_.reserve(max_rows);
  len_.assign(n_seq, 0);
  adapter_.assign(n_seq, -1);
  n_threads_ = model.context().threads > 0 ? model.context().threads : omp_get_max_threads();
  const size_t kv = static_cast<size_t>(cfg.n_kv_head) * cfg.head_dim();
  cache_.resize(static_cast<size_t>(n_seq) * cfg.n_layer * 2 * cap_ * kv * sizeof(float),
                "the KV cache for " + std::to_string(n_seq) + " x " + std::to_string(cap_) + " positions");
  if (model.lora()) {
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
  }
  carve(scratch_);  // counting pass
  scratch_.allocate_counted("the decoder's activations");
  carve(scratch_);
}

void BatchDecoder::carve(Arena& a) {
  a.reset();
  const ModelConfig& cfg = model_.config();
  const size_t R = max_rows_, C = cfg.d_model, F = cfg.d_ff;
  const size_t up = cfg.family == Family::gpt2 ? F : 2 * F;
  pos_ = a.take<int32_t>(R);
  row_adapter_ = a.take<int>(R);
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
  // Logits: one row per sequence at most (a step), not per prompt token (a prefill needs one).
  logits_ = a.take<float>(static_cast<size_t>(n_seq_) * cfg.padded_vocab_size);
  scores_ = a.take<float>(static_cast<size_t>(n_threads_) * cap_);
}

void BatchDecoder::check_seq(int seq, const char* what) const {
  if (seq < 0 || seq >= n_seq_)
    throw Error(std::string("kv cache: ") + what + ": sequence " + std::to_string(seq) + " outside [0, " +
                std::to_string(n_seq_) + ")");
}

void BatchDecoder::start(int seq, int adapter) {
  check_seq(seq, "start");
  if (adapter < -1 || adapter >= static_cast<int>(adapter_sets_.size()))
    throw Error("kv cache: adapter " + std::to_string(adapter) + " outside [-1, " +
                std::to_string(adapter_sets_.size()) + ") (-1: the base alone)");
  len_[seq] = 0;
  adapter_[seq] = adapter;
}

void BatchDecoder::linear(float* out, const float* in, const float* w, const float* b, int n, int C, int OC, int layer,
                          LoraLinear which) {
  const kernels::Backend& k = model_.context().ops();
  if (const kernels::QuantWeight* q = model_.base_quant(layer, which))
    k.linear_forward_q(out, in, q, b, n, C, OC);  // one GEMM over every sequence's rows
  else
    k.linear_forward(out, in, w, b, n, C, OC);
  if (adapters_.empty()) return;
  const Adapter& ad = adapters_[layer][static_cast<int>(which)];
  if (ad.P == 0) return;
  const LoraConfig* l = model_.lora();
  // Each run of adjacent rows with one adapter adds that adapter's delta (none: nothing).
  for (int r0 = 0; r0 < n;) {
    int r1 = r0 + 1;
    while (r1 < n && row_adapter_[r1] == row_adapter_[r0]) ++r1;
    if (const int a = row_adapter_[r0]; a >= 0) {
      const float* set = adapter_sets_[a];
      k.lora_forward(out + static_cast<size_t>(r0) * OC, lora_u_, in + static_cast<size_t>(r0) * C, set + ad.a,
                     set + ad.b, r1 - r0, C, OC, l->r, ad.P, ad.parts, l->scale());
    }
    r0 = r1;
  }
}

const float* BatchDecoder::feed(int seq, const int32_t* tokens, int n) {
  check_seq(seq, "feed");
  if (n <= 0 || n > max_rows_)
    throw Error("kv cache: feed takes 1.." + std::to_string(max_rows_) + " tokens (got " + std::to_string(n) + ")");
  segs_.assign(1, Segment{seq, 0, n});
  return run(tokens, n, false);
}

const float* BatchDecoder::step(const int* seqs, const int32_t* tokens, int m) {
  if (m <= 0 || m > std::min(max_rows_, n_seq_))
    throw Error("kv cache: step takes 1.." + std::to_string(std::min(max_rows_, n_seq_)) + " sequences (got " +
                std::to_string(m) + ")");
  segs_.clear();
  for (int i = 0; i < m; ++i) {
    check_seq(seqs[i], "step");
    for (int j = 0; j < i; ++j)
      if (seqs[j] == seqs[i]) throw Error("kv cache: step: sequence " + std::to_string(seqs[i]) + " given twice");
    segs_.push_back(Segment{seqs[i], i, 1});
  }
  return run(tokens, m, true);
}

const float* BatchDecoder::run(const int32_t* tokens, int n, bool all_logits) {
  const ModelConfig& cfg = model_.config();
  for (const Segment& g : segs_) {
    if (len_[g.seq] + g.n > cap_)
      throw Error("kv cache: sequence " + std::to_string(g.seq) + " full (" + std::to_string(cap_) + " positions; " +
                  std::to_string(len_[g.seq] + g.n) + " needed)");
    for (int i = g.row0; i < g.row0 + g.n; ++i) {
      if (tokens[i] < 0 || tokens[i] >= cfg.vocab_size)
        throw Error("kv cache: token " + std::to_string(tokens[i]) + " outside [0, " + std::to_string(cfg.vocab_size) +
                    ")");
      pos_[i] = len_[g.seq] + (i - g.row0);
      row_adapter_[i] = adapter_[g.seq];
    }
  }
  const ThreadScope threads(model_.context());
  const kernels::Backend& k = model_.context().ops();
  const BlockShape s = block_shape(cfg, 1, n, k, model_.rope_inv_freq().data());
  const size_t kvw = static_cast<size_t>(s.NKV) * s.HS;  // one cached row
  const size_t qk = static_cast<size_t>(s.NH) * s.HS;    // k offset in a qkv row
  const size_t seq_stride = static_cast<size_t>(cfg.n_layer) * 2 * cap_ * kvw;
  const int64_t NC = static_cast<int64_t>(n) * s.C;
  const int up_cols = s.gpt2 ? s.F : 2 * s.F;
  float* P = model_.base_params();
  if (const kernels::QuantWeight* e = model_.base_embedding())
    kernels::encoder_forward_q(x_, tokens, pos_, *e, at(P, off_.pos_emb), n, s.C);  // bf16 table (QLoRA)
  else
    k.encoder_forward(x_, tokens, pos_, P + off_.tok_emb, at(P, off_.pos_emb), n, s.C);  // (n, C)
  for (int l = 0; l < cfg.n_layer; ++l) {
    const LayerTensors w = resolve_layer(P, off_.layers[l]);
    norm_forward(s, ln_, mean_, rstd_, x_, w.norm1_w, w.norm1_b);
    linear(qkv_, ln_, w.qkv_w, w.qkv_b, n, s.C, s.QKV, l, LoraLinear::qkv);  // (n, QKV)
    if (!s.gpt2) {
      k.rope_forward(qkv_, qkv_, pos_, n, s.QKV, s.NH, s.HS, s.inv_freq);
      k.rope_forward(qkv_ + qk, qkv_ + qk, pos_, n, s.QKV, s.NKV, s.HS, s.inv_freq);
    }
    // Each sequence appends its rows to its own cache and attends to it alone.
    for (const Segment& g : segs_) {
      float* kc = cache_.as<float>() + g.seq * seq_stride + static_cast<size_t>(l) * 2 * cap_ * kvw;  // (cap, NKV*HS)
      float* vc = kc + static_cast<size_t>(cap_) * kvw;
      const int start = len_[g.seq];
      for (int i = 0; i < g.n; ++i) {
        const float* row = qkv_ + static_cast<size_t>(g.row0 + i) * s.QKV;
        std::memcpy(kc + static_cast<size_t>(start + i) * kvw, row + qk, kvw * sizeof(float));
        std::memcpy(vc + static_cast<size_t>(start + i) * kvw, row + qk + kvw, kvw * sizeof(float));
      }
      kv_attention_forward(att_ + static_cast<size_t>(g.row0) * s.C, qkv_ + static_cast<size_t>(g.row0) * s.QKV,
                           s.QKV, kc, vc, static_cast<int>(kvw), g.n, start, s.NH, s.NKV, s.HS, scores_, cap_,
                           n_threads_);
    }
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
  for (const Segment& g : segs_) len_[g.seq] += g.n;
  // A prefill needs only its last row's logits; a step needs every row's.
  const int rows = all_logits ? n : 1;
  const BlockShape sl = block_shape(cfg, 1, rows, k, model_.rope_inv_freq().data());
  const float* first = x_ + static_cast<size_t>(n - rows) * s.C;
  norm_forward(sl, ln_, mean_, rstd_, first, at(P, off_.final_w), at(P, off_.final_b));
  if (const kernels::QuantWeight* h = model_.base_head())
    k.linear_forward_q(logits_, ln_, h, nullptr, rows, s.C, cfg.padded_vocab_size);
  else
    k.linear_forward(logits_, ln_, P + off_.lm_head, nullptr, rows, s.C, cfg.padded_vocab_size);
  return logits_;
}

}  // namespace teddy
