// The model: flat parameter and gradient buffers, an activation arena sized per
// B*T, and forward / backward through embeddings, blocks, final norm and the
// chunked classifier (full (B,T,Vp) logits are never held during training).
#include "teddy/model/model.h"

#include <algorithm>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"
#include "teddy/model/model_impl.h"

namespace teddy {

namespace k = kernels::cpu;
using namespace model_detail;

struct Model::Impl {
  ParamOffsets off;
  Arena arena;
  Activations acts;  // views into arena for up to acts.rows rows
  Recompute recompute = Recompute::none;
  Recompute carved_for = Recompute::none;  // the mode the arena's views were carved for
  Profiler* prof = nullptr;
};

Model::Model(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  layout_ = make_param_layout(cfg_);
  params_.resize(layout_.total * sizeof(float));
  grads_.resize(layout_.total * sizeof(float));
  impl_ = std::make_unique<Impl>();
  impl_->off = resolve_offsets(cfg_, layout_);
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

float* Model::param(std::string_view name) { return params() + layout_.find(name).offset; }
float* Model::grad(std::string_view name) { return grads() + layout_.find(name).offset; }

void Model::set_profiler(Profiler* p) { impl_->prof = p; }

Recompute recompute_from_name(std::string_view name) {
  if (name == "none") return Recompute::none;
  if (name == "attention") return Recompute::attention;
  if (name == "block" || name == "full") return Recompute::block;
  throw ConfigError("recompute: unknown mode '" + std::string(name) + "' (known: none, attention, block)");
}

std::string_view recompute_name(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::attention: return "attention";
    case Recompute::block: return "block";
  }
  return "?";
}

void Model::set_recompute(Recompute r) { impl_->recompute = r; }
Recompute Model::recompute() const { return impl_->recompute; }

void Model::zero_grad() { zero_floats(grads(), layout_.total); }

size_t Model::param_bytes() const { return params_.bytes(); }
size_t Model::grad_bytes() const { return grads_.bytes(); }
size_t Model::activation_bytes() const { return impl_->arena.capacity(); }

int Model::classifier_chunk_rows(const ModelConfig& cfg, int rows) {
  return model_detail::classifier_chunk_rows(cfg, rows);
}

size_t Model::activation_bytes_for(const ModelConfig& cfg, int B, int T, Recompute r) {
  cfg.validate();
  Arena counter;
  Activations a;
  carve_activations(counter, cfg, B * T, a, r);
  return counter.peak();
}

void Model::reserve_activations(int B, int T) {
  if (B <= 0 || T <= 0) throw Error("reserve_activations: B and T must be positive");
  const int64_t rows = static_cast<int64_t>(B) * T;
  if (rows > INT32_MAX) throw Error("reserve_activations: B*T must fit in int32");
  const Recompute mode = impl_->recompute;
  if (impl_->arena.allocated() && rows <= impl_->acts.rows && impl_->carved_for == mode) return;
  // Counting pass, then one allocation, then the same views for real. A new mode
  // re-carves at the current capacity (or more), so the arena follows the mode.
  const int keep = impl_->arena.allocated() ? impl_->acts.rows : 0;
  const int r = static_cast<int>(std::max<int64_t>(rows, keep));
  impl_->arena = Arena();  // free the old one first: the peak stays one arena
  Arena arena;
  Activations a;
  carve_activations(arena, cfg_, r, a, mode);
  arena.allocate_counted();
  carve_activations(arena, cfg_, r, a, mode);
  impl_->carved_for = mode;
  impl_->arena = std::move(arena);
  impl_->acts = std::move(a);
}

namespace {

void check_batch(const ModelConfig& cfg, const Batch& b) {
  if (b.B <= 0 || b.T <= 0)
    throw Error("batch: B and T must be positive (got B=" + std::to_string(b.B) + ", T=" + std::to_string(b.T) + ")");
  if (!b.tokens) throw Error("batch: tokens is null");
  if (!b.pos && b.T > cfg.max_seq_len)
    throw Error("batch: T=" + std::to_string(b.T) + " exceeds max_seq_len=" + std::to_string(cfg.max_seq_len));
  const int64_t n = static_cast<int64_t>(b.B) * b.T;
  int64_t bad_tok = -1, bad_tgt = -1, bad_pos = -1;
  // Out-of-range ids would read outside the embedding table: refuse them up front.
#pragma omp parallel for schedule(static) reduction(max : bad_tok, bad_tgt, bad_pos) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= cfg.vocab_size) bad_tok = std::max(bad_tok, i);
    if (b.targets && b.targets[i] != kIgnoreIndex && (b.targets[i] < 0 || b.targets[i] >= cfg.vocab_size))
      bad_tgt = std::max(bad_tgt, i);
    if (b.pos && (b.pos[i] < 0 || b.pos[i] >= cfg.max_seq_len)) bad_pos = std::max(bad_pos, i);
  }
  const std::string V = std::to_string(cfg.vocab_size);
  if (bad_tok >= 0)
    throw Error("batch: tokens[" + std::to_string(bad_tok) + "]=" + std::to_string(b.tokens[bad_tok]) +
                " outside [0, " + V + ")");
  if (bad_tgt >= 0)
    throw Error("batch: targets[" + std::to_string(bad_tgt) + "]=" + std::to_string(b.targets[bad_tgt]) +
                " outside [0, " + V + ") and not the ignore index");
  if (bad_pos >= 0)
    throw Error("batch: pos[" + std::to_string(bad_pos) + "]=" + std::to_string(b.pos[bad_pos]) +
                " outside [0, max_seq_len=" + std::to_string(cfg.max_seq_len) + ")");
}

int64_t count_targets(const int32_t* targets, int64_t n) {
  int64_t c = 0;
#pragma omp parallel for schedule(static) reduction(+ : c) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) c += targets[i] != kIgnoreIndex;
  return c;
}

}  // namespace

// Embeddings, every block, final norm: fills the arena's activations for `b`.
void Model::run_trunk(const Batch& b) {
  check_batch(cfg_, b);
  reserve_activations(b.B, b.T);
  if (hooks_.on_start) hooks_.on_start();
  Activations& a = impl_->acts;
  const ParamOffsets& o = impl_->off;
  BlockShape s = block_shape(cfg_, b.B, b.T, impl_->prof);
  s.attn_scratch = impl_->acts.attn_scratch;
  s.attn_scratch_floats = impl_->acts.attn_scratch_floats;
  float* P = params();
  if (b.pos) {
    std::copy(b.pos, b.pos + s.N, a.pos);
  } else {
    for (int r = 0; r < b.B; ++r)
      for (int t = 0; t < b.T; ++t) a.pos[static_cast<size_t>(r) * b.T + t] = t;
  }
  timed(s.prof, "encoder_forward", 0, [&] {
    k::encoder_forward(a.resid[0], b.tokens, a.pos, at(P, o.tok_emb), at(P, o.pos_emb), s.N, s.C);  // (N, C)
  });
  for (int l = 0; l < cfg_.n_layer; ++l) {
    if (hooks_.before_forward) hooks_.before_forward(l);
    block_forward(s, resolve_layer(P, o.layers[l]), a.layers[l], a.act, a.resid[l], a.resid[l + 1], a.pos, b.seg);
    if (hooks_.after_forward) hooks_.after_forward(l);
  }
  norm_forward(s, a.lnf, a.meanf, a.rstdf, a.resid[cfg_.n_layer], at(P, o.final_w), at(P, o.final_b));
}

LossSum Model::forward(const Batch& b, float* logits_out) {
  run_trunk(b);
  Activations& a = impl_->acts;
  const int N = b.B * b.T, C = cfg_.d_model, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  const float* W = params() + impl_->off.lm_head;  // (Vp, C)
  Profiler* prof = impl_->prof;
  LossSum loss;
  if (logits_out) {
    timed(prof, "classifier_forward", linear_flops(N, C, Vp),
          [&] { k::linear_forward(logits_out, a.lnf, W, nullptr, N, C, Vp); });  // (N, Vp)
    if (b.targets)
      timed(prof, "crossentropy", 0, [&] {
        loss.sum = k::crossentropy_forward_backward(a.losses, nullptr, logits_out, b.targets, N, V, Vp,
                                                    kIgnoreIndex, 1.0f);
      });
  } else if (b.targets) {
    for (int r0 = 0; r0 < N; r0 += a.cls_rows) {
      const int R = std::min(a.cls_rows, N - r0);
      timed(prof, "classifier_forward", linear_flops(R, C, Vp), [&] {
        k::linear_forward(a.logits, a.lnf + static_cast<size_t>(r0) * C, W, nullptr, R, C, Vp);  // (R, Vp)
      });
      timed(prof, "crossentropy", 0, [&] {
        loss.sum += k::crossentropy_forward_backward(a.losses + r0, nullptr, a.logits, b.targets + r0, R, V, Vp,
                                                     kIgnoreIndex, 1.0f);
      });
    }
  }
  if (b.targets) loss.count = count_targets(b.targets, N);
  if (hooks_.on_end) hooks_.on_end();
  return loss;
}

LossSum Model::forward_backward(const Batch& b, float dloss) {
  if (!b.targets) throw Error("forward_backward: batch has no targets");
  run_trunk(b);
  Activations& a = impl_->acts;
  const ParamOffsets& o = impl_->off;
  BlockShape s = block_shape(cfg_, b.B, b.T, impl_->prof);
  s.attn_scratch = impl_->acts.attn_scratch;
  s.attn_scratch_floats = impl_->acts.attn_scratch_floats;
  const int N = s.N, C = s.C, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  float* P = params();
  float* G = grads();
  LossSum loss;
  // Classifier, chunk by chunk: logits, then dlogits in place, then straight into
  // dlnf and dW, so only one (R, Vp) chunk is ever alive.
  const int cls = even_chunk_rows(N, a.cls_rows);
  for (int r0 = 0; r0 < N; r0 += cls) {
    const int R = std::min(cls, N - r0);
    const float* x = a.lnf + static_cast<size_t>(r0) * C;
    timed(s.prof, "classifier_forward", linear_flops(R, C, Vp),
          [&] { k::linear_forward(a.logits, x, P + o.lm_head, nullptr, R, C, Vp); });  // (R, Vp)
    timed(s.prof, "crossentropy", 0, [&] {
      loss.sum += k::crossentropy_forward_backward(a.losses + r0, a.logits, a.logits, b.targets + r0, R, V, Vp,
                                                   kIgnoreIndex, dloss);
    });
    timed(s.prof, "classifier_backward", 2 * linear_flops(R, C, Vp), [&] {
      k::linear_backward(a.dln + static_cast<size_t>(r0) * C, G + o.lm_head, nullptr, a.logits, x, P + o.lm_head,
                         R, C, Vp, kernels::Grad::set);  // chunks write disjoint rows of dlnf
    });
  }
  loss.count = count_targets(b.targets, N);
  // Final norm, then the blocks in reverse; dx carries dL/d(residual stream).
  timed(s.prof, "zero_activation_grads", 0, [&] { zero_floats(a.dx, static_cast<size_t>(N) * C); });
  norm_backward(s, a.dx, at(G, o.final_w), at(G, o.final_b), a.dln, a.resid[cfg_.n_layer], at(P, o.final_w),
                a.meanf, a.rstdf);
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    if (hooks_.before_backward) hooks_.before_backward(l);
    const LayerTensors w = resolve_layer(P, o.layers[l]);
    block_recompute(s, impl_->carved_for, w, a.layers[l], a.resid[l], a.pos, b.seg);  // after the hook: ZeRO-3 gathers first
    block_backward(s, resolve_layer(P, o.layers[l]), resolve_layer(G, o.layers[l]), a.layers[l], a, a.resid[l],
                   a.pos, b.seg);
    if (hooks_.after_backward) hooks_.after_backward(l);
  }
  timed(s.prof, "encoder_backward", 0,
        [&] { k::encoder_backward(G + o.tok_emb, at(G, o.pos_emb), a.dx, b.tokens, a.pos, N, C); });
  if (hooks_.on_end) hooks_.on_end();
  return loss;
}

}  // namespace teddy
