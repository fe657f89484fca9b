#include "teddy/plan/memory.h"

#include "teddy/model/model.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/plan/lora.h"
#include "teddy/plan/params.h"
#include "teddy/plan/units.h"

namespace teddy::plan {
namespace {

constexpr int kMaxMicroBatch = 1 << 20;
constexpr int kMaxRanks = 1 << 20;

[[noreturn]] void fail(const std::string& field, const std::string& rule, long long got) {
  throw ConfigError(field + ": " + rule + " (got " + std::to_string(got) + ")");
}

// The engine's arena starts every tensor on a 64-byte boundary.
double aligned(double bytes) { return std::ceil(bytes / 64.0) * 64.0; }

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Megatron's split: QKV and MLP-up by columns (weight and bias), proj and MLP-down
// by rows (bias replicated), embedding and head by vocabulary; norms and learned
// positions replicated.
bool split_by_tp(const TensorCount& t) {
  if (t.role == TensorRole::token_embedding || t.role == TensorRole::lm_head) return true;
  if (t.role != TensorRole::block) return false;
  return ends_with(t.name, ".weight") ? t.matrix : (ends_with(t.name, "qkv.bias") || ends_with(t.name, "up.bias"));
}

// Parameters (floats, each tensor 64-byte aligned as the engine allocates them) held
// by the busiest pipeline stage of one tensor-parallel rank.
int64_t params_on_device(const ModelConfig& cfg, int tp, int pp) {
  const int per_stage = (cfg.n_layer + pp - 1) / pp;
  int64_t first = 0, last = 0;  // stage 0 and stage pp-1 (the same stage when pp == 1)
  for (const TensorCount& t : param_tensors(cfg)) {
    const int64_t n = align_floats(split_by_tp(t) ? (t.numel + tp - 1) / tp : t.numel);
    switch (t.role) {
      case TensorRole::token_embedding:
        first += n;
        if (pp > 1 && cfg.tie_embeddings) last += n;  // the last stage keeps a copy for the head
        break;
      case TensorRole::position_embedding: first += n; break;
      case TensorRole::block:
        if (t.layer < per_stage) first += n;
        if (t.layer >= (pp - 1) * per_stage) last += n;
        break;
      case TensorRole::final_norm:
      case TensorRole::lm_head: (pp > 1 ? last : first) += n; break;
    }
  }
  return pp > 1 ? std::max(first, last) : first;
}

}  // namespace

void TrainSetup::validate(const ModelConfig& cfg) const {
  cfg.validate();
  if (micro_batch < 1 || micro_batch > kMaxMicroBatch)
    fail("micro_batch", "must be in [1, " + std::to_string(kMaxMicroBatch) + "]", micro_batch);
  if (seq_len < 1) fail("seq_len", "must be >= 1", seq_len);
  if (seq_len > cfg.max_seq_len)
    fail("seq_len", "must be at most the model's max_seq_len " + std::to_string(cfg.max_seq_len), seq_len);
  if (static_cast<int64_t>(micro_batch) * seq_len > INT_MAX)
    fail("micro_batch", "micro_batch * seq_len must fit the engine's int32 row count (seq_len=" +
                            std::to_string(seq_len) + ")", micro_batch);
  if (precision != DType::f32 && precision != DType::bf16 && precision != DType::f16)
    fail("precision", "must be fp32, bf16 or fp16", static_cast<int>(precision));
  if (zero_stage < 0 || zero_stage > 3) fail("zero_stage", "must be 0, 1, 2 or 3", zero_stage);
  if (dp < 1 || dp > kMaxRanks) fail("dp", "must be in [1, " + std::to_string(kMaxRanks) + "]", dp);
  if (tp < 1 || cfg.n_head % tp != 0 || cfg.n_kv_head % tp != 0)
    fail("tp", "must be >= 1 and divide n_head (" + std::to_string(cfg.n_head) + ") and n_kv_head (" +
                   std::to_string(cfg.n_kv_head) + ")", tp);
  if (pp < 1 || pp > cfg.n_layer)
    fail("pp", "must be in [1, n_layer = " + std::to_string(cfg.n_layer) + "]", pp);
  if (lora.enabled()) {
    lora.validate(cfg);  // names lora.<key>
    if (precision != DType::f32)
      throw ConfigError("precision: LoRA trains in fp32 (the engine refuses bf16 / fp16 with LoRA; got " +
                        std::string(dtype_name(precision)) + ")");
    if (tp > 1 || pp > 1) throw ConfigError("tp, pp: LoRA plans are for data parallelism only (tp = pp = 1)");
  }
}

BytesPerParam bytes_per_param(DType precision) {
  if (precision == DType::f32) return {4, 4, 8};
  return {2, 2, 12};  // 16-bit working copy and grads; fp32 master, m, v
}

ModelStates zero_states(double psi, DType precision, int zero_stage, int dp) {
  if (!(psi >= 0) || !std::isfinite(psi)) throw ConfigError("params: must be a finite count >= 0");
  if (zero_stage < 0 || zero_stage > 3) fail("zero_stage", "must be 0, 1, 2 or 3", zero_stage);
  if (dp < 1 || dp > kMaxRanks) fail("dp", "must be in [1, " + std::to_string(kMaxRanks) + "]", dp);
  const BytesPerParam b = bytes_per_param(precision);
  const double nd = dp;
  ModelStates m;
  m.params_on_device = static_cast<int64_t>(psi);
  m.params = b.params * psi / (zero_stage >= 3 ? nd : 1);
  m.grads = b.grads * psi / (zero_stage >= 2 ? nd : 1);
  m.optimizer = b.optimizer * psi / (zero_stage >= 1 ? nd : 1);
  return m;
}

ModelStates model_states(const ModelConfig& cfg, const TrainSetup& s) {
  s.validate(cfg);
  if (s.lora.enabled()) {  // the adapters are what the engine shards; the base stays whole
    ModelStates m = zero_states(static_cast<double>(lora_adapter_floats(cfg, s.lora)), s.precision, s.zero_stage, s.dp);
    m.base = lora_base_bytes(cfg).of(s.lora.quantize);
    return m;
  }
  return zero_states(static_cast<double>(params_on_device(cfg, s.tp, s.pp)), s.precision, s.zero_stage, s.dp);
}

ActivationBytes activation_bytes(const ModelConfig& cfg, const TrainSetup& s) {
  s.validate(cfg);
  // Bytes per element of what the engine stores in 16 bits in bf16/fp16 (each block's
  // ln1, qkv, att, h, ln2, up and the residual stream); everything else stays fp32:
  // norm statistics, logsumexp, the MLP activation, final norm, logits, losses,
  // activation gradients (model/activations.cpp).
  const double e = dtype_size(s.precision);
  const bool half = s.precision != DType::f32;
  const double t = s.tp;
  const double N = static_cast<double>(s.micro_batch) * s.seq_len;
  const double C = cfg.d_model, F = cfg.d_ff, QKV = cfg.qkv_dim(), NH = cfg.n_head;
  const bool gpt2 = cfg.family == Family::gpt2;
  const double up = gpt2 ? F : 2 * F;
  auto take = [&](double per_row) { return aligned(N * per_row * 4); };    // fp32
  auto take_e = [&](double per_row) { return aligned(N * per_row * e); };  // 16-bit in mixed precision

  // One block's saved tensors, split into what the attention half and the MLP half keep
  // (model/activations.cpp, LayerActs). The residual output resid[l+1] is the next
  // block's input and is always kept.
  const double attn_stats = (gpt2 ? take(1) : 0) /*mean1*/ + take(1) /*rstd1*/ + take(NH / t) /*lse*/;
  const double mlp_stats = (gpt2 ? take(1) : 0) /*mean2*/ + take(1) /*rstd2*/;
  const double attn_big32 = take(C) /*ln1*/ + take(QKV / t) /*qkv*/ + take(C / t) /*att*/;
  const double mlp_big32 = take(C) /*h*/ + take(C) /*ln2*/ + take(up / t) /*up*/;
  const double attn_big = take_e(C) + take_e(QKV / t) + take_e(C / t);
  const double mlp_big = take_e(C) + take_e(C) + take_e(up / t);
  const double resid = take_e(C);

  ActivationBytes a;
  switch (s.recompute) {
    case Recompute::none:
      a.per_layer = attn_big + attn_stats + mlp_big + mlp_stats + resid;
      break;
    case Recompute::attention:  // norm1, QKV and attention redone from the block input
      a.per_layer = mlp_big + mlp_stats + resid;
      a.scratch += attn_big32 + attn_stats;  // one block's worth, rebuilt during its backward
      break;
    case Recompute::block:      // keep the residual stream only
      a.per_layer = resid;
      a.scratch += attn_big32 + attn_stats + mlp_big32 + mlp_stats;
      break;
  }
  // Mixed precision: the kept 16-bit tensors are widened into one block's worth of fp32
  // working scratch (the recompute modes have it already), and the residual stream
  // alternates between two fp32 buffers.
  if (half && s.recompute == Recompute::none) a.scratch += attn_big32;
  if (half && s.recompute != Recompute::block) a.scratch += mlp_big32;
  // 1F1B keeps up to pp micro-batches in flight on stage 0, each with its stage's layers.
  const int per_stage = (cfg.n_layer + s.pp - 1) / s.pp;
  a.layers = a.per_layer * per_stage * s.pp;

  const double cls = Model::classifier_chunk_rows(cfg, static_cast<int>(std::min<double>(N, INT32_MAX)));
  a.outside = aligned(N * 4) /*positions, int32*/ + take_e(C) /*resid[0]*/ + (half ? 2 * take(C) : 0) /*fp32 residual buffers*/ +
              take(F / t) /*MLP act*/ + take(C) /*lnf*/ + (gpt2 ? take(1) : 0) /*meanf*/ + take(1) /*rstdf*/ +
              aligned(cls * cfg.padded_vocab_size / t * 4) /*logits chunk*/ + take(1) /*losses*/;
  a.scratch += take(C) /*dx*/ + take(C) /*dln*/ + take(C / t) /*datt*/ + take(QKV / t) /*dqkv*/ +
               (gpt2 ? 0 : take(QKV / t)) /*dqkv before RoPE*/ + take(F / t) /*dact*/ + take(up / t) /*dup*/;
  // FlashAttention workspace: per-thread tiles and packed copies, linear in T (sized by
  // the engine for the current thread count).
  a.scratch += aligned(static_cast<double>(Model::attention_workspace_bytes(cfg, s.micro_batch, s.seq_len)));
  // LoRA: each adapted linear's u = x A^T kept per layer (with the layers), the
  // adapters' gradient and dropout scratch.
  if (s.lora.enabled()) {
    a.lora = lora_activation_bytes(cfg, s.lora, static_cast<int64_t>(s.micro_batch) * s.seq_len);
  }

  // Korthikanti et al. 2022, Table 2: bytes per layer at 16-bit activations.
  const double sbh = static_cast<double>(s.seq_len) * s.micro_batch * C;
  const double as_h = NH * s.seq_len / C;
  double k = 0;
  switch (s.recompute) {
    case Recompute::none: k = sbh * (10 + 24 / t + 5 * as_h / t); break;
    case Recompute::attention: k = sbh * (10 + 24 / t); break;  // "selective" recomputation
    case Recompute::block: k = 2 * sbh; break;                  // full recomputation
  }
  a.korthikanti_per_layer = k * (e / 2);
  a.korthikanti_layers = a.korthikanti_per_layer * per_stage * s.pp;
  return a;
}

MemoryEstimate estimate_memory(const ModelConfig& cfg, const TrainSetup& setup) {
  MemoryEstimate m;
  m.setup = setup;
  m.states = model_states(cfg, setup);
  m.activations = activation_bytes(cfg, setup);
  return m;
}

int max_micro_batch(const ModelConfig& cfg, TrainSetup s, double device_bytes) {
  check_range("device memory", device_bytes, 1e15);
  s.micro_batch = 1;
  s.validate(cfg);
  const ModelStates states = model_states(cfg, s);
  if (states.total() > device_bytes)
    throw ConfigError("device memory " + format_bytes(device_bytes) +
                      " is too small for even the model states: they need " + format_bytes(states.total()) +
                      " per device (params " + format_bytes(states.params) + ", grads " +
                      format_bytes(states.grads) + ", optimizer " + format_bytes(states.optimizer) +
                      "); use ZeRO-3 over more data-parallel ranks, or a smaller model");
  auto total = [&](int b) {
    s.micro_batch = b;
    return states.total() + activation_bytes(cfg, s).total();
  };
  const double one = total(1);
  if (one > device_bytes)
    throw ConfigError("device memory " + format_bytes(device_bytes) +
                      " is too small for even one sample: micro-batch 1 at seq_len " + std::to_string(s.seq_len) +
                      " needs " + format_bytes(one) + " (model states " + format_bytes(states.total()) +
                      " + activations " + format_bytes(one - states.total()) +
                      "); try recompute=block, a shorter sequence, or ZeRO-3 over more ranks");
  // Activations grow with the micro-batch, so "fits" is monotone: binary search.
  const int cap = static_cast<int>(std::min<int64_t>(kMaxMicroBatch, INT_MAX / s.seq_len));
  int lo = 1, hi = cap;  // total(lo) fits
  if (total(hi) <= device_bytes) return hi;
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (total(mid) <= device_bytes ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace teddy::plan
