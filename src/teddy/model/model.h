#pragma once
// A decoder-only transformer (GPT-2 or LLaMA family) with explicit forward and
// backward over contiguous buffers: one for parameters, one for their gradients
// (same layout), one activation arena sized once per (B, T).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/core/nf4.h"
#include "teddy/kernels/context.h"
#include "teddy/model/config.h"
#include "teddy/model/lora.h"

namespace teddy {

class Profiler;
struct LoraState;
namespace model_detail { struct BlockShape; }

constexpr int32_t kIgnoreIndex = -100;  // PyTorch's default ignore_index

// One named tensor inside the flat parameter buffer.
struct ParamInfo {
  std::string name;           // e.g. "layers.3.attn.qkv.weight"
  std::vector<int64_t> shape; // PyTorch order, e.g. {out, in} for linear weights
  size_t offset = 0;          // in floats, from the start of the flat buffer (64-byte aligned)
  size_t numel = 0;
  bool decay = true;          // weight decay group: false for norms, biases (see docs)
  int layer = -1;             // transformer block index, -1 for embeddings / final norm / head
};

// Order: embeddings, then each block's tensors contiguously (block 0, 1, ...), then
// final norm and (untied) lm head. Per-block contiguity lets ZeRO-3 gather a layer and
// pipeline stages own a range.
struct ParamLayout {
  std::vector<ParamInfo> params;
  size_t total = 0;  // floats in the flat buffer, including alignment padding
  const ParamInfo& find(std::string_view name) const;  // throws Error if absent
  size_t count() const;  // parameters proper (sum of numel, no padding)
};
ParamLayout make_param_layout(const ModelConfig& cfg);

// Inputs of one micro-batch. tokens, targets (B,T); targets may be nullptr (no loss).
// targets[i] == kIgnoreIndex carries no loss. pos (B,T) or nullptr: positions 0..T-1
// per row. seg (B,T) or nullptr: document ids for packed sequences (attention stays
// inside a document).
struct Batch {
  const int32_t* tokens = nullptr;
  const int32_t* targets = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seg = nullptr;
  int B = 0, T = 0;
};

// Activation recomputation: what forward_backward keeps for backward.
//   none:      everything the backward reads (fastest, most memory);
//   attention: drops norm1 output, QKV, attention output and its logsumexp per block
//              and redoes norm1 + QKV GEMM (+ RoPE) + attention in backward;
//   block:     keeps only each block's input (the residual stream) and redoes the
//              block's forward (all but the down projection) in backward.
// The recomputed tensors go to one block's worth of shared scratch. Kernels are
// deterministic, so gradients are bit-identical to `none`.
enum class Recompute { none, attention, block };
Recompute recompute_from_name(std::string_view name);  // "none" | "attention" | "block" ("full"); throws ConfigError
std::string_view recompute_name(Recompute r);

// Training precision. fp32: everything fp32. bf16 / fp16 (mixed precision): the
// weights the matrix products read and the activations a block saves for backward are
// rounded to 16 bits (round to nearest even), the residual-stream gradient crossing a
// block boundary too; every product, norm, softmax and the loss accumulate in fp32, and
// the parameters, gradients and optimizer state stay fp32 (the master weights). This
// CPU has no 16-bit GEMM, so 16-bit values are widened to fp32 before arithmetic; what
// the mode saves is activation memory (docs/TRAINING_OPTIMIZATIONS.md).
enum class Precision { fp32, bf16, fp16 };
// "fp32" | "bf16" | "fp16"; throws ConfigError naming `field` ("train.precision").
Precision precision_from_name(std::string_view name, std::string_view field = "precision");
std::string_view precision_name(Precision p);
DType precision_dtype(Precision p);  // f32, bf16, f16

struct LossSum {
  double sum = 0.0;    // sum of per-token losses over non-ignored targets
  int64_t count = 0;   // number of non-ignored targets
  double mean() const { return count ? sum / static_cast<double>(count) : 0.0; }
};

// A source of base weights read tensor by tensor (Model::with_lora): fill(p, row0, rows,
// out) writes rows [row0, row0 + rows) of base tensor p (of the full layout,
// make_param_layout; a row is numel / shape[0] floats) as fp32 into out. Called once
// or more per tensor, in layout order, with ascending contiguous row ranges.
using BaseFill = std::function<void(const ParamInfo& p, int64_t row0, int64_t rows, float* out)>;
// For an NF4 base (Model::with_lora, lora.quantize nf4): the NF4 tensor of one HF module
// (`part`: its rows of block linear p, e.g. q_proj's rows of attn.qkv) as already
// quantized elsewhere (a bitsandbytes file, io/hf_bnb4.h), taken as is; or nullopt, and that
// part is quantized from the BaseFill. Called once per module, in layout order.
using Nf4Source = std::function<std::optional<Nf4Tensor>(const ParamInfo& p, const LoraPart& part)>;

class Model {
 public:
  // Validates cfg, allocates params and grads (zeros). Every kernel of forward and
  // backward runs through ctx's backend (default: cpu), with ctx.threads threads.
  explicit Model(const ModelConfig& cfg, Context ctx = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelConfig& config() const { return cfg_; }
  // RoPE's inverse frequencies (head_dim/2, model/rope_freqs.h) every rotation of this
  // model reads; empty for GPT-2.
  const std::vector<double>& rope_inv_freq() const { return rope_inv_freq_; }
  // The backend and threads this model runs on; AdamW, clipping and the distributed
  // engine take the model's so a run's kernels all go to one place.
  const Context& context() const { return ctx_; }
  // Moves the model's kernels to another backend (a run's [train] gemm choice, made
  // after a model was loaded). Call it before reserve_activations and before an
  // optimizer copies the context: the arena's attention workspace is planned with the
  // backend's query (the onednn tables share cpu's attention, so theirs is the same).
  void set_backend(const kernels::Backend& b) { ctx_.backend = &b; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.as<float>(); }
  const float* params() const { return params_.as<float>(); }
  float* grads() { return grads_.as<float>(); }
  const float* grads() const { return grads_.as<float>(); }
  size_t flat_size() const { return layout_.total; }
  float* param(std::string_view name);  // view into the flat buffer
  float* grad(std::string_view name);

  // LoRA (model/lora.h). Moves the current parameters (load the base first) into a
  // frozen base buffer (with lora.quantize nf4 / bf16, the blocks' linear weights are
  // stored quantized and read a tile at a time: QLoRA) and makes params() / grads() / layout() / flat_size() the
  // adapters' (PEFT's init from `seed`): AdamW, clipping, ZeRO and checkpoints then act
  // on the adapters alone. The base has no gradient (its buffer is freed) and never
  // changes. Throws ConfigError for a bad `lora` (naming lora.<key>), Error if LoRA is
  // already on.
  void enable_lora(const LoraConfig& lora, uint64_t seed);
  // A LoRA model built straight from a source of base weights: each tensor goes to its
  // storage (fp32, bf16 or NF4) a chunk of rows at a time (about 4 MiB of fp32), so no
  // fp32 copy of the base (nor of one whole tensor that is stored quantized) ever
  // exists. The same model as Model(cfg) + filling every tensor + enable_lora(lora, seed).
  // An NF4 base quantizes each HF module's rows alone (one NF4 tensor per q / k / v,
  // gate / up: what bitsandbytes stores), or takes them from `nf4` (a bitsandbytes base).
  static Model with_lora(const ModelConfig& cfg, const LoraConfig& lora, uint64_t seed, const BaseFill& fill,
                         Context ctx = {});
  static Model with_lora(const ModelConfig& cfg, const LoraConfig& lora, uint64_t seed, const BaseFill& fill,
                         const Nf4Source& nf4, Context ctx = {});
  // init_weights(seed)'s values as a BaseFill (the same floats, drawn chunk by chunk).
  static BaseFill init_source(const ModelConfig& cfg, uint64_t seed);
  const LoraConfig* lora() const;                 // nullptr without LoRA
  const std::vector<LoraSite>& lora_sites() const;  // the adapted linears (empty without LoRA)
  // The frozen base (without LoRA: the same as params() / layout()).
  float* base_params();
  const float* base_params() const;
  const ParamLayout& base_layout() const;
  float* base_param(std::string_view name);  // fp32 tensors only (not a quantized linear)
  // Any base tensor as fp32 into out (numel floats): a quantized linear dequantized.
  void base_weight(std::string_view name, float* out) const;
  // Bytes of the frozen base: the fp32 buffer plus the quantized linears, and with a
  // quantized base (QLoRA) the token embedding and untied head kept in bf16.
  size_t base_bytes() const;
  // QLoRA: the token embedding (== the head when tied) / the head in bf16, or nullptr.
  const kernels::QuantWeight* base_embedding() const;
  const kernels::QuantWeight* base_head() const;
  // Dropout masks of forward_backward derive from (seed, this counter, layer, linear);
  // the counter counts forward_backward calls. A trainer sets it (e.g. from the step)
  // so a resumed run draws the same masks.
  void set_lora_dropout_counter(uint64_t c);
  // Masks by global position instead (what trainers use): the seed and `step` pick the
  // step's masks, and each element draws by its place in the step's global batch:
  // (sample, position, feature) with sample = first_sample + the row in this call.
  // Each forward_backward then advances first_sample by its B (the next micro-batch's
  // rows), so a step's rows draw the same masks however they are split over
  // micro-batches and ranks: rank r of dp sets first_sample = r * grad_accum * B.
  void set_lora_dropout_rows(uint64_t step, uint64_t first_sample);
  // QLoRA: block `layer`'s linear `i` stored quantized, or nullptr (fp32 base).
  const kernels::QuantWeight* base_quant(int layer, LoraLinear i) const;
  uint64_t lora_dropout_counter() const;

  // GPT-2 init: normal(0, 0.02), residual output projections (attn.proj, mlp.down)
  // scaled by 1/sqrt(2*n_layer), biases 0, norm weights 1. Deterministic in seed.
  // With LoRA: re-initialises the adapters (lora_init), the base is untouched.
  void init_weights(uint64_t seed);

  // Forward only. If logits_out != nullptr it receives (B,T,padded_vocab) logits.
  LossSum forward(const Batch& batch, float* logits_out = nullptr);
  // Forward + backward; parameter gradients ADD into grads() (call zero_grad() first
  // for a new step, or pass Grad::set as below). Each non-ignored target's loss gradient is scaled by dloss, so
  // with dloss = 1 / (non-ignored targets in the whole global batch) the accumulated
  // gradient over micro-batches equals the big-batch mean-loss gradient.
  //
  // param_grads = kernels::Grad::set instead OVERWRITES the parameter gradients with this
  // micro-batch's (for a step's first micro-batch: no zero_grad pass needed, and the
  // weight-gradient GEMMs skip reading the old values). Bit-identical to zero_grad() +
  // add. The linears (and the classifier) write theirs with beta = 0; every other range
  // of the gradient buffer (norms, embeddings, alignment padding) is zeroed first.
  LossSum forward_backward(const Batch& batch, float dloss, kernels::Grad param_grads = kernels::Grad::add);
  void zero_grad();

  // Bytes held, for memory reports.
  size_t param_bytes() const;
  size_t grad_bytes() const;
  size_t activation_bytes() const;  // current arena capacity
  // Arena bytes a model of `cfg` takes for one (B, T) micro-batch (forward_backward),
  // from the same counting pass the model runs; allocates nothing.
  static size_t activation_bytes_for(const ModelConfig& cfg, int B, int T, Recompute r = Recompute::none,
                                     Precision p = Precision::fp32, const Context& ctx = {});
  // The part of the arena the layers keep for backward (their saved tensors and the
  // residual stream), without the one-block working buffers, activation gradients,
  // logits chunk and attention workspace: what 16-bit storage halves.
  size_t saved_activation_bytes() const;
  static size_t saved_activation_bytes_for(const ModelConfig& cfg, int B, int T, Recompute r = Recompute::none,
                                           Precision p = Precision::fp32);
  // Activation recomputation mode (default none). Changing it re-carves the arena at
  // the next call (its size follows the mode).
  void set_recompute(Recompute r);
  Recompute recompute() const;
  // Training precision (default fp32). Like set_recompute, a new mode re-carves the
  // arena at the next call. The parameters stay fp32. On fp32 GEMMs (cpu, onednn) each
  // forward / backward rounds the weights a block's matrix products read into a
  // one-block fp32 scratch. On bf16 GEMMs (a backend whose gemm_inputs is bf16:
  // onednn-bf16 under bf16) the model keeps a bf16 copy of every matmul weight (the
  // blocks' four linears and the classifier), rewritten from the masters at the start
  // of every forward / forward_backward (block l's right after its before_forward hook,
  // where ZeRO-3 gathers it), so a weight update, a checkpoint load or a gather can
  // never leave it stale; the products then read it (and the saved 16-bit activations)
  // as they are, with no rounding per GEMM.
  void set_precision(Precision p);
  Precision precision() const;
  // Bytes of those 16-bit weights (0 in fp32): fp32 GEMMs, the larger of one block's
  // matmul weights and the classifier weight in fp32; bf16 GEMMs, the bf16 copy of all
  // matmul weights (2 bytes per element).
  size_t weight_scratch_bytes() const;
  static size_t weight_scratch_bytes_for(const ModelConfig& cfg, Precision p);
  static size_t weight_scratch_bytes_for(const ModelConfig& cfg, Precision p, const kernels::Backend& b);
  // Sizes the activation arena for B*T rows now (it otherwise grows on the first call
  // with more rows than before; it never shrinks).
  void reserve_activations(int B, int T);
  // Bytes of attention workspace (the backend's attention_*_workspace; cpu: FlashAttention's
  // per-thread tiles, linear in T) inside the arena for one (B, T) micro-batch, planned for
  // every hardware thread (or ctx.threads if more); the planner adds it.
  static size_t attention_workspace_bytes(const ModelConfig& cfg, int B, int T, const Context& ctx = {});
  // Rows of the one (rows, padded_vocab) logits chunk the classifier holds for a
  // micro-batch of `rows` = B*T rows (the planner adds it).
  static int classifier_chunk_rows(const ModelConfig& cfg, int rows);
  // Per-kernel wall-clock accounting into `p` (owned by the caller) for every later
  // forward / forward_backward; nullptr turns it off. Entries are named after the
  // kernels (classifier GEMMs apart: "classifier_forward" / "classifier_backward");
  // GEMM entries carry their FLOPs.
  void set_profiler(Profiler* p);

  // Optional per-block callbacks, called with the block index (distributed/ uses them:
  // ZeRO-3 gathers a block's parameters just before its forward and backward; data
  // parallelism reduces a block's gradients as soon as its backward is done, while
  // the earlier blocks' backward is still to run). Empty functions are skipped.
  struct LayerHooks {
    std::function<void()> on_start;  // forward / forward_backward begins (no parameter read yet)
    std::function<void()> on_end;    // forward / forward_backward is about to return
    std::function<void(int)> before_forward;   // block l's parameters are about to be read
    std::function<void(int)> after_forward;    // block l's forward is done
    std::function<void(int)> before_backward;  // block l's backward is next (the final norm's and head's grads are complete)
    std::function<void(int)> after_backward;   // block l's parameter gradients are complete
  };
  void set_layer_hooks(LayerHooks hooks) { hooks_ = std::move(hooks); }

  struct Impl;  // activation arena, scratch, per-(B,T) state

 private:
  ModelConfig cfg_;
  Context ctx_;
  ParamLayout layout_;
  std::vector<double> rope_inv_freq_;
  AlignedBuffer params_, grads_;
  std::unique_ptr<Impl> impl_;
  LayerHooks hooks_;

  struct Unallocated {};
  Model(const ModelConfig& cfg, Context ctx, Unallocated);  // no parameter / gradient buffers yet
  void attach_lora(std::unique_ptr<LoraState> st, uint64_t seed);  // st holds the base
  void run_trunk(const Batch& batch);  // embeddings, blocks, final norm
  model_detail::BlockShape shape_for(int B, int T) const;  // for the carved arena
};

// LoRA folded in: a plain model (same config and context) whose adapted linears are
// W0 + scale * B A, every other tensor the base's. Throws Error without LoRA.
Model merge_lora(const Model& m);
// W (rows of `in` floats) += scale * B_p A_p on each part's rows of `site`.
void lora_fold(float* W, int in, const float* A, const float* B, const LoraSite& site, int r, float scale);

}  // namespace teddy
