// The model: flat parameter and gradient buffers, an activation arena sized per
// B*T, and forward / backward through embeddings, blocks, final norm and the
// chunked classifier (full (B,T,Vp) logits are never held during training).
#include "teddy/model/model.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/dropout_mask.h"
#include "teddy/model/model_impl.h"
#include "teddy/model/rope_freqs.h"

namespace teddy {

using namespace model_detail;

// LoRA's state: the frozen base, where each block's adapters are, the dropout seed.
struct LoraState {
  LoraConfig cfg;
  std::vector<LoraSite> sites;
  std::array<int, kLoraLinears> site_of{-1, -1, -1, -1};  // index into sites per LoraLinear
  std::vector<std::vector<int>> cols;                     // per site: {off, n} per part
  AlignedBuffer base;                                     // the base parameters, frozen
  ParamLayout base_layout;
  std::vector<std::array<size_t, kLoraLinears>> a_off, b_off;  // per layer; kAbsent: not adapted
  uint64_t seed = 0, counter = 0;
  uint64_t sample0 = 0;     // the first row's sample in the step's global batch
  bool positional = false;  // set_lora_dropout_rows: sample0 advances, counter stays
  AlignedBuffer sink;  // 2*C floats: the frozen norms' weight gradients, never read
  std::vector<std::array<LoraRef, kLoraLinears>> refs;   // per layer, rebuilt per call
  // QLoRA (quantize nf4 / bf16): the blocks' four linear weights, out of `base`.
  std::vector<std::vector<kernels::Nf4Part>> nf4;  // per layer * 4 + linear: one part per HF module
  std::vector<std::vector<uint16_t>> b16;
  std::vector<std::array<kernels::QuantWeight, kLoraLinears>> qw;  // per layer; empty: fp32 base
  // QLoRA: the token embedding and an untied head in bf16 (emb_q, head_q; head_q ==
  // emb_q when tied), out of `base`.
  std::vector<uint16_t> emb16, head16;
  kernels::QuantWeight emb_q, head_q;
  bool vocab16 = false;
  size_t quant_bytes = 0;  // the linears, embedding and head out of `base`
};

namespace {

constexpr const char* kLinearNames[kLoraLinears] = {"attn.qkv", "attn.proj", "mlp.up", "mlp.down"};

// Which block linear p is (0..3), or -1.
int linear_index(const ParamInfo& p) {
  if (p.layer < 0) return -1;
  for (int i = 0; i < kLoraLinears; ++i)
    if (p.name == "layers." + std::to_string(p.layer) + "." + kLinearNames[i] + ".weight") return i;
  return -1;
}

// The fp32 staging chunk a quantized tensor is read through: about 4 MiB, whole rows,
// and a multiple of 64 floats (NF4's block) so no block straddles two chunks.
int64_t chunk_rows(int64_t width) {
  const int64_t unit = std::lcm<int64_t>(width, kNf4Block) / width;  // rows per 64-aligned step
  return std::max<int64_t>(unit, (int64_t{1} << 20) / width / unit * unit);
}

// Builds the frozen base of `st` (st->cfg.quantize decides the storage) from `fill`,
// tensor by tensor in the full layout's order. quantize none: everything fp32, in one
// buffer with the full layout. bf16 / nf4 (QLoRA): the blocks' four linear weights in
// that format (QuantWeight), the token embedding and an untied head in bf16 (they are
// frozen and only read by a gather and the classifier GEMMs: 16 bits halve the
// largest fp32 tensor of a small model), the rest (norms, biases, positions) fp32.
void build_base(LoraState* st, const ModelConfig& cfg, const BaseFill& fill, const Nf4Source& nf4_source = {}) {
  const ParamLayout full = make_param_layout(cfg);
  const bool quant = st->cfg.quantize != "none";
  const bool nf4 = st->cfg.quantize == "nf4";
  const int L = cfg.n_layer;
  const std::vector<LoraSite> modules = lora_all_sites(cfg);  // each linear's HF modules (row ranges)
  auto vocab = [](const ParamInfo& p) { return p.name == "tok_emb.weight" || p.name == "lm_head.weight"; };
  ParamLayout compact;
  constexpr size_t kAlign = kAlignBytes / sizeof(float);
  for (const ParamInfo& p : full.params) {
    if (quant && (linear_index(p) >= 0 || vocab(p))) continue;
    ParamInfo q = p;
    q.offset = align_up(compact.total, kAlign);
    compact.total = q.offset + q.numel;
    compact.params.push_back(q);
  }
  compact.total = align_up(compact.total, kAlign);
  if (!quant) compact = full;
  st->base = AlignedBuffer();
  st->base.resize(compact.total * sizeof(float));
  if (quant) {
    if (nf4) st->nf4.resize(static_cast<size_t>(L) * kLoraLinears);
    else st->b16.resize(static_cast<size_t>(L) * kLoraLinears);
    st->qw.assign(L, {});
  }
  std::vector<float> stage;
  // Rows of p through the staging chunk into 16 bits.
  auto to_bf16 = [&](const ParamInfo& p, std::vector<uint16_t>& dst) {
    const int64_t rows = p.shape[0], width = static_cast<int64_t>(p.numel) / rows, step = chunk_rows(width);
    dst.resize(p.numel);
    stage.resize(static_cast<size_t>(std::min(rows, step) * width));
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t n = std::min(step, rows - r);
      fill(p, r, n, stage.data());
      convert_f32_to_bf16(dst.data() + r * width, stage.data(), static_cast<size_t>(n * width));
    }
    st->quant_bytes += p.numel * 2;
  };
  size_t k = 0;  // next compact tensor
  for (const ParamInfo& p : full.params) {
    const int which = quant ? linear_index(p) : -1;
    if (which >= 0) {
      const size_t slot = static_cast<size_t>(p.layer) * kLoraLinears + which;
      kernels::QuantWeight& w = st->qw[p.layer][which];
      if (nf4) {
        // One NF4 tensor per HF module (q, k, v; gate, up), as bitsandbytes quantizes them.
        const int64_t width = p.shape[1];
        std::vector<kernels::Nf4Part>& parts = st->nf4[slot];
        for (const LoraPart& m : modules[static_cast<size_t>(which)].parts) {
          std::optional<Nf4Tensor> given = nf4_source ? nf4_source(p, m) : std::nullopt;
          if (given && given->numel != static_cast<int64_t>(m.rows) * width)
            throw Error("with_lora: the NF4 tensor given for " + p.name + " (" + m.hf_module + ") has " +
                        std::to_string(given->numel) + " weights, expected " + std::to_string(int64_t{m.rows} * width));
          kernels::Nf4Part part{m.off, m.rows, {}};
          part.q = given ? std::move(*given)
                         : nf4_quantize_chunked(static_cast<int64_t>(m.rows) * width, true, chunk_rows(width) * width,
                                                [&](int64_t lo, int64_t hi, float* out) {
                                                  fill(p, m.off + lo / width, (hi - lo) / width, out);
                                                });
          st->quant_bytes += part.q.bytes();
          parts.push_back(std::move(part));
        }
        w.kind = kernels::QuantWeight::Kind::nf4;
        w.nf4 = parts.data();
        w.nf4_parts = static_cast<int>(parts.size());
      } else {
        to_bf16(p, st->b16[slot]);
        w.kind = kernels::QuantWeight::Kind::bf16;
        w.bf16 = st->b16[slot].data();
      }
    } else if (quant && vocab(p)) {
      std::vector<uint16_t>& dst = p.name == "tok_emb.weight" ? st->emb16 : st->head16;
      to_bf16(p, dst);
    } else {
      const ParamInfo& q = compact.params[k++];
      fill(p, 0, p.shape[0], st->base.as<float>() + q.offset);
    }
  }
  stage = {};
  if (quant) {
    st->emb_q = {kernels::QuantWeight::Kind::bf16, nullptr, 0, st->emb16.data()};
    st->head_q = cfg.tie_embeddings ? st->emb_q : kernels::QuantWeight{kernels::QuantWeight::Kind::bf16, nullptr, 0, st->head16.data()};
    st->vocab16 = true;
  }
  st->base_layout = std::move(compact);
}

}  // namespace

struct Model::Impl {
  ParamOffsets off;
  std::unique_ptr<LoraState> lora;
  bool training = false;  // inside forward_backward (LoRA dropout on)
  // Gradient ranges forward_backward(Grad::set) must zero: all but what the linears and
  // the classifier overwrite ([begin, end) in floats, ascending).
  std::vector<std::pair<size_t, size_t>> zero_on_set;
  Arena arena;
  Activations acts;  // views into arena for up to acts.rows rows
  Recompute recompute = Recompute::none;
  Recompute carved_for = Recompute::none;  // the mode the arena's views were carved for
  Precision precision = Precision::fp32;
  Precision carved_prec = Precision::fp32;  // the precision the arena was carved for
  // Mixed precision: the weights one matrix product stage reads, rounded from the fp32
  // master weights on every use (one block's four matmul weights, or the classifier).
  AlignedBuffer wscratch;
  // bf16 GEMMs instead (BlockShape::gemm16): the bf16 copy of every matmul weight,
  // block by block (weight16_layer), then the classifier (weight16_head); rewritten
  // from the masters by every forward (Model::set_precision).
  AlignedBuffer w16;
  Profiler* prof = nullptr;
};

Model::Model(const ModelConfig& cfg, Context ctx) : cfg_(cfg), ctx_(ctx) {
  if (!ctx_.backend) throw Error("Model: the context has no backend");
  cfg_.validate();
  layout_ = make_param_layout(cfg_);
  if (cfg_.family == Family::llama) rope_inv_freq_ = teddy::rope_inv_freq(cfg_);
  params_.resize(layout_.total * sizeof(float), "parameters");
  grads_.resize(layout_.total * sizeof(float), "gradients");
  impl_ = std::make_unique<Impl>();
  impl_->off = resolve_offsets(cfg_, layout_);
  // The tensors the GEMMs overwrite in set mode: every block linear (weight and bias)
  // and the classifier's matrix (tok_emb when tied: the encoder then adds onto it).
  std::vector<size_t> written = {impl_->off.lm_head};
  for (const LayerOffsets& l : impl_->off.layers)
    written.insert(written.end(), {l.qkv_w, l.qkv_b, l.proj_w, l.proj_b, l.up_w, l.up_b, l.down_w, l.down_b});
  size_t pos = 0;  // the layout lists tensors in offset order; the gaps are what to zero
  for (const ParamInfo& p : layout_.params) {
    if (std::find(written.begin(), written.end(), p.offset) == written.end()) continue;
    if (p.offset > pos) impl_->zero_on_set.emplace_back(pos, p.offset);
    pos = p.offset + p.numel;
  }
  if (pos < layout_.total) impl_->zero_on_set.emplace_back(pos, layout_.total);
}

void Model::enable_lora(const LoraConfig& lora, uint64_t seed) {
  if (impl_->lora) throw Error("enable_lora: LoRA is already on");
  lora.validate(cfg_);
  // The loaded weights are the source; they are freed once the base holds them.
  AlignedBuffer old = std::move(params_);
  const ParamLayout full = std::move(layout_);
  grads_ = AlignedBuffer();  // the base has no gradient
  const float* src = old.as<float>();
  if (lora.quantize == "none") {  // the fp32 base is the loaded buffer itself: no copy
    auto st = std::make_unique<LoraState>();
    st->cfg = lora;
    st->base = std::move(old);
    st->base_layout = full;
    attach_lora(std::move(st), seed);
    return;
  }
  auto st = std::make_unique<LoraState>();
  st->cfg = lora;
  build_base(st.get(), cfg_, [&](const ParamInfo& p, int64_t row0, int64_t rows, float* out) {
    const size_t width = p.numel / static_cast<size_t>(p.shape[0]);
    std::memcpy(out, src + p.offset + static_cast<size_t>(row0) * width, static_cast<size_t>(rows) * width * sizeof(float));
  });
  old = AlignedBuffer();
  attach_lora(std::move(st), seed);
}

Model::Model(const ModelConfig& cfg, Context ctx, Unallocated) : cfg_(cfg), ctx_(ctx) {
  if (!ctx_.backend) throw Error("Model: the context has no backend");
  cfg_.validate();
  if (cfg_.family == Family::llama) rope_inv_freq_ = teddy::rope_inv_freq(cfg_);
  impl_ = std::make_unique<Impl>();
}

Model Model::with_lora(const ModelConfig& cfg, const LoraConfig& lora, uint64_t seed, const BaseFill& fill,
                       Context ctx) {
  return with_lora(cfg, lora, seed, fill, Nf4Source{}, ctx);
}

Model Model::with_lora(const ModelConfig& cfg, const LoraConfig& lora, uint64_t seed, const BaseFill& fill,
                       const Nf4Source& nf4, Context ctx) {
  Model m(cfg, ctx, Unallocated{});
  lora.validate(m.cfg_);
  auto st = std::make_unique<LoraState>();
  st->cfg = lora;
  build_base(st.get(), m.cfg_, fill, nf4);
  m.attach_lora(std::move(st), seed);
  return m;
}

// With the base in st: the adapters' layout, buffers and initialisation, and where
// each block's adapters are.
void Model::attach_lora(std::unique_ptr<LoraState> st, uint64_t seed) {
  const LoraConfig& lora = st->cfg;
  st->sites = teddy::lora_sites(cfg_, lora);
  st->seed = seed;
  impl_->off = resolve_offsets(cfg_, st->base_layout);
  layout_ = make_lora_layout(cfg_, lora);
  params_ = AlignedBuffer();
  params_.resize(layout_.total * sizeof(float), "parameters");
  grads_ = AlignedBuffer();
  grads_.resize(layout_.total * sizeof(float), "gradients");
  lora_init(params(), layout_, seed);
  st->a_off.assign(cfg_.n_layer, {kAbsent, kAbsent, kAbsent, kAbsent});
  st->b_off = st->a_off;
  for (size_t i = 0; i < st->sites.size(); ++i) {
    const LoraSite& site = st->sites[i];
    st->site_of[static_cast<int>(site.linear)] = static_cast<int>(i);
    st->cols.push_back(site.part_cols());
    for (int l = 0; l < cfg_.n_layer; ++l) {
      const std::string n = "layers." + std::to_string(l) + "." + site.name;
      st->a_off[l][static_cast<int>(site.linear)] = layout_.find(n + ".lora_A").offset;
      st->b_off[l][static_cast<int>(site.linear)] = layout_.find(n + ".lora_B").offset;
    }
  }
  st->sink.resize(2 * static_cast<size_t>(cfg_.d_model) * sizeof(float));
  st->refs.resize(cfg_.n_layer);
  // Every adapter tensor's gradient is written by lora_backward; only the padding
  // between them needs zeroing in Grad::set mode.
  impl_->zero_on_set.clear();
  size_t pos = 0;
  for (const ParamInfo& p : layout_.params) {
    if (p.offset > pos) impl_->zero_on_set.emplace_back(pos, p.offset);
    pos = p.offset + p.numel;
  }
  if (pos < layout_.total) impl_->zero_on_set.emplace_back(pos, layout_.total);
  impl_->lora = std::move(st);
  impl_->arena = Arena();  // re-carve with the adapters' saved tensors
  impl_->acts = Activations{};
}

const LoraConfig* Model::lora() const { return impl_->lora ? &impl_->lora->cfg : nullptr; }
const std::vector<LoraSite>& Model::lora_sites() const {
  static const std::vector<LoraSite> none;
  return impl_->lora ? impl_->lora->sites : none;
}
float* Model::base_params() { return impl_->lora ? impl_->lora->base.as<float>() : params(); }
const float* Model::base_params() const { return impl_->lora ? impl_->lora->base.as<float>() : params(); }
const ParamLayout& Model::base_layout() const { return impl_->lora ? impl_->lora->base_layout : layout_; }
float* Model::base_param(std::string_view name) { return base_params() + base_layout().find(name).offset; }
size_t Model::base_bytes() const {
  return impl_->lora ? impl_->lora->base.bytes() + impl_->lora->quant_bytes : params_.bytes();
}

const kernels::QuantWeight* Model::base_embedding() const {
  return impl_->lora && impl_->lora->vocab16 ? &impl_->lora->emb_q : nullptr;
}
const kernels::QuantWeight* Model::base_head() const {
  return impl_->lora && impl_->lora->vocab16 ? &impl_->lora->head_q : nullptr;
}

void Model::base_weight(std::string_view name, float* out) const {
  const LoraState* st = impl_->lora.get();
  const ParamLayout& bl = base_layout();
  if (st && st->vocab16 && (name == "tok_emb.weight" || name == "lm_head.weight")) {
    const kernels::QuantWeight& q = name == "tok_emb.weight" ? st->emb_q : st->head_q;
    if (name == "lm_head.weight" && cfg_.tie_embeddings) throw Error("base_weight: a tied model has no lm_head.weight");
    kernels::dequantize_rows(q, cfg_.d_model, 0, cfg_.padded_vocab_size, out);
    return;
  }
  for (const ParamInfo& p : bl.params)
    if (p.name == name) {
      std::memcpy(out, base_params() + p.offset, p.numel * sizeof(float));
      return;
    }
  if (st && !st->qw.empty())
    for (int l = 0; l < cfg_.n_layer; ++l)
      for (int i = 0; i < kLoraLinears; ++i)
        if (name == "layers." + std::to_string(l) + "." + kLinearNames[i] + ".weight") {
          const ParamLayout full = make_param_layout(cfg_);
          const ParamInfo& p = full.find(name);
          kernels::dequantize_rows(st->qw[l][i], static_cast<int>(p.shape[1]), 0, static_cast<int>(p.shape[0]), out);
          return;
        }
  throw Error("base_weight: \"" + std::string(name) + "\" is not a base tensor");
}
void Model::set_lora_dropout_counter(uint64_t c) {
  if (!impl_->lora) return;
  impl_->lora->counter = c;
  impl_->lora->sample0 = 0;
  impl_->lora->positional = false;
}
void Model::set_lora_dropout_rows(uint64_t step, uint64_t first_sample) {
  if (!impl_->lora) return;
  impl_->lora->counter = step;
  impl_->lora->sample0 = first_sample;
  impl_->lora->positional = true;
}
const kernels::QuantWeight* Model::base_quant(int layer, LoraLinear i) const {
  const LoraState* st = impl_->lora.get();
  if (!st || st->qw.empty()) return nullptr;
  return &st->qw.at(static_cast<size_t>(layer))[static_cast<int>(i)];
}

uint64_t Model::lora_dropout_counter() const { return impl_->lora ? impl_->lora->counter : 0; }

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

Precision precision_from_name(std::string_view name, std::string_view field) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  throw ConfigError(std::string(field) + ": unknown precision '" + std::string(name) + "' (known: fp32, bf16, fp16)");
}

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

DType precision_dtype(Precision p) {
  switch (p) {
    case Precision::fp32: return DType::f32;
    case Precision::bf16: return DType::bf16;
    case Precision::fp16: return DType::f16;
  }
  return DType::f32;
}

void Model::set_precision(Precision p) { impl_->precision = p; }
Precision Model::precision() const { return impl_->precision; }

namespace {

// Floats of one block's matmul weights (qkv, proj, up, down), each rounded to a
// 16-float boundary so every scratch tensor stays 64-byte aligned for sgemm.
size_t round16(size_t n) { return (n + 15) / 16 * 16; }
size_t block_matmul_floats(const ModelConfig& c) {
  const size_t C = c.d_model, F = c.d_ff, up = c.family == Family::gpt2 ? F : 2 * F;
  return round16(C * c.qkv_dim()) + round16(C * C) + round16(C * up) + round16(F * C);
}

// The bf16 weight copy: each tensor starts on a 32-element (64-byte) boundary.
size_t round32(size_t n) { return (n + 31) / 32 * 32; }
size_t block16_elems(const ModelConfig& c) {
  const size_t C = c.d_model, F = c.d_ff, up = c.family == Family::gpt2 ? F : 2 * F;
  return round32(C * c.qkv_dim()) + round32(C * C) + round32(C * up) + round32(F * C);
}
size_t head16_elems(const ModelConfig& c) { return round32(static_cast<size_t>(c.padded_vocab_size) * c.d_model); }

// Whether a run at precision p on backend b keeps the bf16 weight copy (gemm16).
bool uses_weight16(Precision p, const kernels::Backend& b) {
  return p == Precision::bf16 && b.gemm_inputs == DType::bf16;
}

}  // namespace

size_t Model::weight_scratch_bytes_for(const ModelConfig& cfg, Precision p) {
  if (p == Precision::fp32) return 0;
  const size_t head = static_cast<size_t>(cfg.padded_vocab_size) * cfg.d_model;
  return std::max(block_matmul_floats(cfg), head) * sizeof(float);
}

size_t Model::weight_scratch_bytes_for(const ModelConfig& cfg, Precision p, const kernels::Backend& b) {
  if (!uses_weight16(p, b)) return weight_scratch_bytes_for(cfg, p);
  return (static_cast<size_t>(cfg.n_layer) * block16_elems(cfg) + head16_elems(cfg)) * sizeof(bf16_t);
}

size_t Model::weight_scratch_bytes() const { return impl_->wscratch.bytes() + impl_->w16.bytes(); }

void Model::zero_grad() {
  const ThreadScope threads(ctx_);
  zero_floats(grads(), layout_.total);
}

size_t Model::param_bytes() const { return params_.bytes(); }
size_t Model::grad_bytes() const { return grads_.bytes(); }
size_t Model::activation_bytes() const { return impl_->arena.capacity(); }
size_t Model::saved_activation_bytes() const { return impl_->acts.saved_bytes; }

int Model::classifier_chunk_rows(const ModelConfig& cfg, int rows) {
  return model_detail::classifier_chunk_rows(cfg, rows);
}

namespace {
// The counting pass alone: {whole arena, the part the layers keep}.
std::pair<size_t, size_t> count_activations(const ModelConfig& cfg, int B, int T, Recompute r, Precision p,
                                            const Context& ctx) {
  cfg.validate();
  Arena counter;
  Activations a;
  carve_activations(counter, cfg, B * T, a, r, p, ctx);
  return {counter.peak(), a.saved_bytes};
}
}  // namespace

size_t Model::activation_bytes_for(const ModelConfig& cfg, int B, int T, Recompute r, Precision p,
                                   const Context& ctx) {
  return count_activations(cfg, B, T, r, p, ctx).first;
}

size_t Model::saved_activation_bytes_for(const ModelConfig& cfg, int B, int T, Recompute r, Precision p) {
  return count_activations(cfg, B, T, r, p, Context{}).second;  // the saved part needs no backend
}

void Model::reserve_activations(int B, int T) {
  if (B <= 0 || T <= 0) throw Error("reserve_activations: B and T must be positive");
  const int64_t rows = static_cast<int64_t>(B) * T;
  if (rows > INT32_MAX) throw Error("reserve_activations: B*T must fit in int32");
  const Recompute mode = impl_->recompute;
  const Precision prec = impl_->precision;
  if (impl_->lora && prec != Precision::fp32)
    throw ConfigError("LoRA trains in fp32: precision '" + std::string(precision_name(prec)) +
                      "' with LoRA is not supported yet");
  LoraArena la;
  if (const LoraState* st = impl_->lora.get()) {
    la.r = st->cfg.r;
    la.dropout = st->cfg.dropout > 0;
    for (const LoraSite& site : st->sites) la.parts[static_cast<int>(site.linear)] = static_cast<int>(site.parts.size());
  }
  // One of the two (bf16 GEMMs: the bf16 copy; fp32 GEMMs: the fp32 rounding scratch),
  // the old freed before the new is made. The backend may have changed (set_backend).
  const bool w16 = uses_weight16(prec, ctx_.ops()) && !impl_->lora;
  const size_t wbytes = w16 ? 0 : weight_scratch_bytes_for(cfg_, prec);
  const size_t w16bytes = w16 ? weight_scratch_bytes_for(cfg_, prec, ctx_.ops()) : 0;
  if (impl_->wscratch.bytes() != wbytes) impl_->wscratch = AlignedBuffer();
  if (impl_->w16.bytes() != w16bytes) impl_->w16 = AlignedBuffer();
  if (wbytes && !impl_->wscratch.bytes()) impl_->wscratch.resize(wbytes, "the 16-bit weight scratch");
  if (w16bytes && !impl_->w16.bytes()) impl_->w16.resize(w16bytes, "the bf16 copy of the matmul weights");
  if (impl_->arena.allocated() && rows <= impl_->acts.rows && impl_->carved_for == mode &&
      impl_->carved_prec == prec)
    return;
  // Counting pass, then one allocation, then the same views for real. A new mode
  // re-carves at the current capacity (or more), so the arena follows the mode.
  const int keep = impl_->arena.allocated() ? impl_->acts.rows : 0;
  const int r = static_cast<int>(std::max<int64_t>(rows, keep));
  impl_->arena = Arena();  // free the old one first: the peak stays one arena
  Arena arena;
  Activations a;
  carve_activations(arena, cfg_, r, a, mode, prec, ctx_, la);
  arena.allocate_counted("activations for " + std::to_string(r) + " rows (micro_batch x seq_len)");
  carve_activations(arena, cfg_, r, a, mode, prec, ctx_, la);
  impl_->carved_for = mode;
  impl_->carved_prec = prec;
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

namespace {

// Whether the backend's linear GEMMs round their inputs to the model's precision
// themselves (onednn-bf16 under bf16): then rounding the weights first is a pass that
// changes nothing (rounding a rounded value is the identity), and is skipped.
bool gemm_rounds_weights(const BlockShape& s) { return s.prec != DType::f32 && s.k->gemm_inputs == s.prec; }

// Mixed precision: block l's tensors with the four matmul weights replaced by their
// rounding into `scratch` (norm weights and biases stay fp32: they enter fp32 adds).
LayerTensors rounded_layer(const BlockShape& s, LayerTensors w, float* scratch) {
  if (s.prec == DType::f32 || gemm_rounds_weights(s)) return w;
  ProfileScope scope(s.prof, "round_weights");
  const size_t C = s.C, F = s.F, up = s.gpt2 ? F : 2 * F;
  auto put = [&](float*& t, size_t n) {
    s.k->round_copy(s.prec, scratch, t, n);
    t = scratch;
    scratch += round16(n);
  };
  put(w.qkv_w, C * s.QKV);
  put(w.proj_w, C * C);
  put(w.up_w, C * up);
  put(w.down_w, F * C);
  return w;
}

// The classifier weight the head GEMMs read: W itself, or its rounding into `scratch`.
const float* rounded_head(const BlockShape& s, const float* W, size_t n, float* scratch) {
  if (s.prec == DType::f32 || gemm_rounds_weights(s)) return W;
  ProfileScope scope(s.prof, "round_weights");
  s.k->round_copy(s.prec, scratch, W, n);
  return scratch;
}

// bf16 GEMMs: where block l's bf16 weights are in the copy, in LayerTensors order.
uint16_t* weight16_layer(const ModelConfig& cfg, uint16_t* copy, int l) {
  return copy + static_cast<size_t>(l) * block16_elems(cfg);
}
uint16_t* weight16_head(const ModelConfig& cfg, uint16_t* copy) {
  return copy + static_cast<size_t>(cfg.n_layer) * block16_elems(cfg);
}

// bf16 GEMMs: block l's tensors with the bf16 copies of its four matmul weights
// attached (at dst), rewritten from the fp32 masters first when `refresh` (forward,
// right after the before_forward hook: after a ZeRO-3 gather). Backward reads what the
// same call's forward wrote (the masters do not change in between).
LayerTensors with_weight16(const BlockShape& s, LayerTensors w, uint16_t* dst, bool refresh) {
  if (!s.gemm16) return w;
  ProfileScope scope(refresh ? s.prof : nullptr, "refresh_weights16");
  const size_t C = s.C, F = s.F, up = s.gpt2 ? F : 2 * F;
  auto put = [&](const uint16_t*& t16, const float* t, size_t n) {
    if (refresh) convert_f32_to_bf16(dst, t, n);
    t16 = dst;
    dst += round32(n);
  };
  put(w.qkv_w16, w.qkv_w, C * s.QKV);
  put(w.proj_w16, w.proj_w, C * C);
  put(w.up_w16, w.up_w, C * up);
  put(w.down_w16, w.down_w, F * C);
  return w;
}

// bf16 GEMMs: the classifier weight (Vp, C) rewritten into its bf16 copy.
const uint16_t* refresh_head16(const BlockShape& s, const float* W, size_t n, uint16_t* dst) {
  ProfileScope scope(s.prof, "refresh_weights16");
  convert_f32_to_bf16(dst, W, n);
  return dst;
}

}  // namespace

BlockShape Model::shape_for(int B, int T) const {
  BlockShape s = block_shape(cfg_, B, T, ctx_.ops(), rope_inv_freq_.data(), impl_->prof);
  s.attn_scratch = impl_->acts.attn_scratch;
  s.attn_scratch_floats = impl_->acts.attn_scratch_floats;
  s.prec = precision_dtype(impl_->carved_prec);
  s.gemm16 = impl_->w16.bytes() > 0 && uses_weight16(impl_->carved_prec, ctx_.ops()) && !impl_->lora;
  if (const LoraState* st = impl_->lora.get()) {
    s.lora_r = st->cfg.r;
    s.lora_scale = st->cfg.scale();
    s.lora_dropout = impl_->training ? st->cfg.dropout : 0.0f;
    s.lora_xd = impl_->acts.lora_xd;
    s.lora_dxd = impl_->acts.lora_dxd;
    s.lora_du = impl_->acts.lora_du;
    s.lora_sample0 = st->sample0;
    s.lora_stride_t = cfg_.max_seq_len;
  }
  return s;
}

namespace {
// Block l's adapters (parameters, gradients when training, saved u, the dropout
// seed of this call) for LayerTensors::lora; nullptr without LoRA.
const LoraRef* lora_refs(LoraState* st, int l, const float* A, float* G, const Activations& a, bool training) {
  if (!st) return nullptr;
  std::array<LoraRef, kLoraLinears>& r = st->refs[l];
  for (int i = 0; i < kLoraLinears; ++i) {
    r[i] = LoraRef{};
    const int si = st->site_of[i];
    if (si < 0) continue;
    r[i].A = A + st->a_off[l][i];
    r[i].B = A + st->b_off[l][i];
    r[i].dA = training ? G + st->a_off[l][i] : nullptr;
    r[i].dB = training ? G + st->b_off[l][i] : nullptr;
    r[i].u = a.lora_u[l][i];
    r[i].parts = st->cols[si].data();
    r[i].P = static_cast<int>(st->sites[si].parts.size());
    r[i].seed = kernels::dropout_hash(kernels::dropout_hash(st->seed, st->counter),
                                      static_cast<uint64_t>(l) * kLoraLinears + i);
  }
  return r.data();
}
}  // namespace

// Embeddings, every block, final norm: fills the arena's activations for `b`.
void Model::run_trunk(const Batch& b) {
  check_batch(cfg_, b);
  reserve_activations(b.B, b.T);
  if (hooks_.on_start) hooks_.on_start();
  Activations& a = impl_->acts;
  const ParamOffsets& o = impl_->off;
  const BlockShape s = shape_for(b.B, b.T);
  const bool half = s.prec != DType::f32;
  float* W16 = impl_->wscratch.as<float>();
  float* P = base_params();
  if (b.pos) {
    std::copy(b.pos, b.pos + s.N, a.pos);
  } else {
    for (int r = 0; r < b.B; ++r)
      for (int t = 0; t < b.T; ++t) a.pos[static_cast<size_t>(r) * b.T + t] = t;
  }
  timed(s.prof, "encoder_forward", 0, [&] {
    if (const kernels::QuantWeight* e = base_embedding())
      kernels::encoder_forward_q(a.resid[0], b.tokens, a.pos, *e, at(P, o.pos_emb), s.N, s.C);  // bf16 table (QLoRA)
    else
      s.k->encoder_forward(a.resid[0], b.tokens, a.pos, at(P, o.tok_emb), at(P, o.pos_emb), s.N, s.C);  // (N, C)
  });
  const size_t NC = static_cast<size_t>(s.N) * s.C;
  // Mixed precision: the residual stream is rounded (and kept) in 16 bits after the
  // embeddings and after every block, so each block starts from what backward will see.
  keep16(s, "round_16", a.resid[0], half ? a.resid16[0] : nullptr, NC);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    if (hooks_.before_forward) hooks_.before_forward(l);
    LayerTensors w = rounded_layer(s, resolve_layer(P, o.layers[l]), W16);  // after the hook: ZeRO-3 gathers first
    w = with_weight16(s, w, weight16_layer(cfg_, impl_->w16.as<uint16_t>(), l), true);
    w.lora = lora_refs(impl_->lora.get(), l, params(), grads(), a, impl_->training);
    if (impl_->lora && !impl_->lora->qw.empty()) w.q = impl_->lora->qw[l].data();
    block_forward(s, w, a.layers[l], a.act, a.resid[l], a.resid[l + 1], a.pos, b.seg);
    keep16(s, "round_16", a.resid[l + 1], half ? a.resid16[l + 1] : nullptr, NC);
    if (hooks_.after_forward) hooks_.after_forward(l);
  }
  norm_forward(s, a.lnf, a.meanf, a.rstdf, a.resid[cfg_.n_layer], at(P, o.final_w), at(P, o.final_b));
  keep16(s, "round_16", a.lnf, nullptr, NC);  // the classifier GEMMs' input
}

LossSum Model::forward(const Batch& b, float* logits_out) {
  const ThreadScope threads(ctx_);
  impl_->training = false;
  run_trunk(b);
  const kernels::Backend& k = ctx_.ops();
  Activations& a = impl_->acts;
  const int N = b.B * b.T, C = cfg_.d_model, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  const kernels::QuantWeight* Wq = base_head();  // QLoRA: the head in bf16
  const BlockShape s = shape_for(b.B, b.T);
  const float* W = Wq ? nullptr
                      : rounded_head(s, base_params() + impl_->off.lm_head, static_cast<size_t>(Vp) * C,
                                     impl_->wscratch.as<float>());  // (Vp, C)
  const uint16_t* H16 = s.gemm16 ? refresh_head16(s, W, static_cast<size_t>(Vp) * C,
                                                  weight16_head(cfg_, impl_->w16.as<uint16_t>()))
                                 : nullptr;
  auto head = [&](float* out, const float* x, int R) {
    if (Wq) k.linear_forward_q(out, x, Wq, nullptr, R, C, Vp);
    else if (H16) k.linear16_forward(out, x, nullptr, H16, nullptr, R, C, Vp);
    else k.linear_forward(out, x, W, nullptr, R, C, Vp);
  };
  Profiler* prof = impl_->prof;
  LossSum loss;
  if (logits_out) {
    timed(prof, "classifier_forward", linear_flops(N, C, Vp),
          [&] { head(logits_out, a.lnf, N); });  // (N, Vp)
    if (b.targets)
      timed(prof, "crossentropy", 0, [&] {
        loss.sum = k.crossentropy_forward_backward(a.losses, nullptr, logits_out, b.targets, N, V, Vp,
                                                    kIgnoreIndex, 1.0f);
      });
  } else if (b.targets) {
    for (int r0 = 0; r0 < N; r0 += a.cls_rows) {
      const int R = std::min(a.cls_rows, N - r0);
      timed(prof, "classifier_forward", linear_flops(R, C, Vp), [&] {
        head(a.logits, a.lnf + static_cast<size_t>(r0) * C, R);  // (R, Vp)
      });
      timed(prof, "crossentropy", 0, [&] {
        loss.sum += k.crossentropy_forward_backward(a.losses + r0, nullptr, a.logits, b.targets + r0, R, V, Vp,
                                                     kIgnoreIndex, 1.0f);
      });
    }
  }
  if (b.targets) loss.count = count_targets(b.targets, N);
  if (hooks_.on_end) hooks_.on_end();
  return loss;
}

LossSum Model::forward_backward(const Batch& b, float dloss, kernels::Grad param_grads) {
  if (!b.targets) throw Error("forward_backward: batch has no targets");
  const ThreadScope threads(ctx_);
  impl_->training = true;
  struct TrainingOff {  // also on a throw
    Model::Impl* impl;
    int B;
    ~TrainingOff() {
      impl->training = false;
      if (!impl->lora) return;
      if (impl->lora->positional)
        impl->lora->sample0 += static_cast<uint64_t>(B);  // the step's next rows
      else
        ++impl->lora->counter;  // the next call draws new dropout masks
    }
  } training_off{impl_.get(), b.B};
  run_trunk(b);
  const kernels::Backend& k = ctx_.ops();
  Activations& a = impl_->acts;
  const ParamOffsets& o = impl_->off;
  BlockShape s = shape_for(b.B, b.T);
  LoraState* st = impl_->lora.get();
  float* sink = st ? st->sink.as<float>() : nullptr;  // the frozen base's norm gradients
  s.param_grads = param_grads;
  const bool set = param_grads == kernels::Grad::set;
  if (set)
    timed(s.prof, "zero_grad", 0, [&] {
      for (const auto& [lo, hi] : impl_->zero_on_set) zero_floats(grads() + lo, hi - lo);
    });
  const int N = s.N, C = s.C, V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  float* P = base_params();
  float* G = grads();  // with LoRA: the adapters' only
  float* W16 = impl_->wscratch.as<float>();
  const kernels::QuantWeight* Wq = base_head();  // QLoRA: the frozen head in bf16
  const float* Wh = Wq ? nullptr : rounded_head(s, P + o.lm_head, static_cast<size_t>(Vp) * C, W16);  // (Vp, C)
  const uint16_t* Wh16 = s.gemm16 ? refresh_head16(s, Wh, static_cast<size_t>(Vp) * C,
                                                   weight16_head(cfg_, impl_->w16.as<uint16_t>()))
                                  : nullptr;
  LossSum loss;
  // Classifier, chunk by chunk: logits, then dlogits in place, then straight into
  // dlnf and dW, so only one (R, Vp) chunk is ever alive.
  const int cls = even_chunk_rows(N, a.cls_rows);
  for (int r0 = 0; r0 < N; r0 += cls) {
    const int R = std::min(cls, N - r0);
    const float* x = a.lnf + static_cast<size_t>(r0) * C;
    timed(s.prof, "classifier_forward", linear_flops(R, C, Vp),
          [&] {
            if (Wq) k.linear_forward_q(a.logits, x, Wq, nullptr, R, C, Vp);
            else if (Wh16) k.linear16_forward(a.logits, x, nullptr, Wh16, nullptr, R, C, Vp);
            else k.linear_forward(a.logits, x, Wh, nullptr, R, C, Vp);  // (R, Vp)
          });
    timed(s.prof, "crossentropy", 0, [&] {
      loss.sum += k.crossentropy_forward_backward(a.losses + r0, a.logits, a.logits, b.targets + r0, R, V, Vp,
                                                   kIgnoreIndex, dloss);
    });
    timed(s.prof, "classifier_backward", 2 * linear_flops(R, C, Vp), [&] {
      // Chunks write disjoint rows of dlnf; in set mode the first chunk overwrites dW.
      if (Wq) {  // frozen: dlnf only
        k.linear_backward_q(a.dln + static_cast<size_t>(r0) * C, a.logits, Wq, R, C, Vp, kernels::Grad::set);
        return;
      }
      const kernels::Grad pm = set && r0 == 0 ? kernels::Grad::set : kernels::Grad::add;
      if (Wh16)  // dlogits rounded once for both products
        k.linear16_backward(a.dln + static_cast<size_t>(r0) * C, G + o.lm_head, nullptr, a.logits, x, nullptr, Wh16, R,
                            C, Vp, kernels::Grad::set, pm);
      else
        k.linear_backward(a.dln + static_cast<size_t>(r0) * C, st ? nullptr : G + o.lm_head, nullptr, a.logits, x, Wh,
                          R, C, Vp, kernels::Grad::set, pm);
    });
  }
  loss.count = count_targets(b.targets, N);
  // Final norm, then the blocks in reverse; dx carries dL/d(residual stream).
  timed(s.prof, "zero_activation_grads", 0, [&] { zero_floats(a.dx, static_cast<size_t>(N) * C); });
  const size_t NC = static_cast<size_t>(N) * C;
  if (s.prec != DType::f32) k.widen_to_f32(s.prec, a.resid[cfg_.n_layer], a.resid16[cfg_.n_layer], NC);
  norm_backward(s, a.dx, st ? sink : at(G, o.final_w), st && o.final_b != kAbsent ? sink + C : at(G, o.final_b),
                a.dln, a.resid[cfg_.n_layer], at(P, o.final_w), a.meanf, a.rstdf);
  // Mixed precision: the residual-stream gradient is rounded to 16 bits at every block
  // boundary (what a 16-bit backward would pass on), which is where fp16 needs the loss
  // scale: small gradients flush to zero, a too-large scale overflows to inf.
  keep16(s, "round_16", a.dx, nullptr, NC);
  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    if (hooks_.before_backward) hooks_.before_backward(l);
    LayerTensors w = rounded_layer(s, resolve_layer(P, o.layers[l]), W16);  // after the hook: ZeRO-3 gathers first
    w = with_weight16(s, w, weight16_layer(cfg_, impl_->w16.as<uint16_t>(), l), false);  // the forward's copy
    w.lora = lora_refs(st, l, params(), G, a, true);
    if (st && !st->qw.empty()) w.q = st->qw[l].data();
    const LayerTensors g = st ? frozen_layer_grads(sink, C, s.gpt2) : resolve_layer(G, o.layers[l]);
    block_widen(s, a, l);
    block_recompute(s, impl_->carved_for, w, a.layers[l], a.resid[l], a.pos, b.seg);
    block_backward(s, w, g, a.layers[l], a, a.resid[l], a.pos, b.seg);
    keep16(s, "round_16", a.dx, nullptr, NC);
    if (hooks_.after_backward) hooks_.after_backward(l);
  }
  if (!st)  // a frozen base has no embedding gradient
    timed(s.prof, "encoder_backward", 0,
          [&] { k.encoder_backward(G + o.tok_emb, at(G, o.pos_emb), a.dx, b.tokens, a.pos, N, C); });
  if (hooks_.on_end) hooks_.on_end();
  return loss;
}

}  // namespace teddy
