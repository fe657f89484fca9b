#pragma once
// The step engine: every training step of every run (teddy pretrain, teddy sft,
// train_step) goes through ZeroTrainer. One process is a world of one
// (SelfCommunicator) at stage 0; under mpirun / srun it is data parallel with ZeRO
// stages 0-3 over the model's flat buffers. It owns what a step means: the global
// target count (the loss gradient is scaled by 1 / (non-ignored targets over all
// ranks and micro-batches), so the gradient is the global batch's mean-loss
// gradient whatever the split), the loss scaler (fp16), the gradient norm and
// clipping, and the optimizer; and it saves and loads its rank's ranges of a
// checkpoint (checkpoint/group.h).
//
//   stage 0  every rank keeps everything; gradients are all-reduced bucket by
//            bucket, each bucket as soon as the backward has completed it (the
//            blocks run last to first, so the head's and late blocks' buckets go
//            while earlier blocks are still in backward).
//   stage 1  AdamW state (m, v) only for this rank's equal contiguous range of the
//            flat buffer; gradient buckets are reduce-scattered (on the last
//            micro-batch); the updated ranges are all-gathered into every rank's
//            parameters.
//   stage 2  as 1, and each bucket is reduce-scattered on every micro-batch as soon
//            as it is complete; the pages of the bucket outside this rank's range
//            are freed (resident_pages.h) and come back as zeros for the next
//            micro-batch, so only the own range of gradients stays in memory. The
//            own range accumulates across micro-batches in place: the reduced sum
//            already there plus every rank's new contribution is the new sum.
//   stage 3  as 2, and parameters too: only the own range stays resident. Each
//            block's range is all-gathered just before its forward and again
//            before its backward, and freed after each; the tensors outside the
//            blocks (embeddings, final norm, head) are gathered at the start of
//            forward and freed at its end. No all-gather after the update.
//
// Stages 0 and 1 keep whole gradients, so a step's first micro-batch overwrites
// them (Model::forward_backward with Grad::set: no zero_grad pass, and the weight-
// gradient GEMMs skip reading C); stages 2 and 3 zero their own range and add, as
// their released pages are already zero.
//
// Overlap (default on): a bucket's collective is started (non-blocking) the moment
// the backward completes it and runs while the blocks below are in backward; every
// layer hook lets the started ones advance (communicator test), and the micro-batch
// waits for all of them before the optimizer (stage 2: before the next
// micro-batch accumulates, and the non-owned part of a bucket is freed when its
// reduce-scatter completes). Off: the same collectives, blocking.
//
// Loss scaling (fp16): the loss gradient is multiplied by the scaler's power-of-two
// scale; the norm is taken of the scaled (reduced) gradient and divided back, and
// clipping and AdamW see the unscaled gradient (1/scale folded into AdamW's
// grad_scale, so a scaled step equals an unscaled one bit for bit). A step whose
// global norm is not finite (some gradient overflowed on some rank) is skipped on
// every rank alike: no update, the scale halves, StepStats::skipped.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/checkpoint/group.h"
#include "teddy/distributed/communicator.h"
#include "teddy/distributed/flat_shards.h"
#include "teddy/distributed/parallel_layout.h"
#include "teddy/distributed/sharded_adamw.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/loss_scaler.h"

namespace teddy {

struct StepStats {
  double loss = 0;       // mean loss over the step's non-ignored targets (all ranks)
  int64_t tokens = 0;    // non-ignored targets in the step (all ranks)
  double grad_norm = 0;  // global L2 norm before clipping (unscaled)
  float lr = 0;          // learning rate used
  bool skipped = false;  // with a loss scaler: gradients overflowed, no update was made
  float loss_scale = 1;  // the scale this step's backward ran with
};

// Non-ignored targets (!= kIgnoreIndex) of a batch. Throws Error if it has no targets.
int64_t count_targets(const Batch& b);

}  // namespace teddy

namespace teddy::dist {

// Bytes of model state this rank holds.
struct StateBytes {
  size_t params = 0, grads = 0, optimizer = 0;
  size_t total() const { return params + grads + optimizer; }
};

class ZeroTrainer {
 public:
  // bucket_bytes: gradient bucket size (4 bytes per float). Every rank starts from
  // rank 0's parameters (broadcast). Installs layer hooks on `model` (removed by the
  // destructor); model and comm must outlive this.
  ZeroTrainer(Model& model, const AdamWConfig& cfg, Communicator& comm, int stage,
              size_t bucket_bytes = size_t{8} << 20, bool overlap = true);
  // Stage 0 over the caller's optimizer (which must outlive this): train_step's form.
  ZeroTrainer(Model& model, AdamW& optimizer, Communicator& comm);
  ~ZeroTrainer();
  ZeroTrainer(const ZeroTrainer&) = delete;
  ZeroTrainer& operator=(const ZeroTrainer&) = delete;

  // One optimizer step over this rank's micro-batches (its slice of the global
  // batch); loss, tokens and the norm are global. Throws Error if there are no
  // micro-batches or one has no targets.
  StepStats step(std::span<const Batch> micro_batches, float lr, float max_grad_norm);

  // Dynamic loss scaling (fp16): the engine's own scaler from `cfg`, or a caller's
  // (borrowed, must outlive this; nullptr turns scaling off).
  void enable_loss_scaling(const LossScalerConfig& cfg);
  void set_loss_scaler(LossScaler* scaler);
  LossScaler* loss_scaler() { return scaler_; }
  const LossScaler* loss_scaler() const { return scaler_; }

  Communicator& comm() { return comm_; }
  int stage() const { return stage_; }
  bool overlap() const { return overlap_; }
  const FlatShards& shards() const { return shards_; }
  Range own() const { return own_; }
  size_t buckets() const { return buckets_.size(); }

  // Communication of the last step: bytes this rank sent (ring model), payload
  // bytes it handed to the collectives (measured) and seconds inside calls.
  uint64_t last_step_bytes() const { return last_bytes_; }
  uint64_t last_step_payload_bytes() const { return last_payload_; }
  double last_step_comm_seconds() const { return last_seconds_; }

  // Measured: resident bytes of the parameter and gradient buffers (mincore) and
  // the optimizer state this rank allocated. Call between steps.
  StateBytes memory() const;
  size_t optimizer_bytes() const;  // AdamW's m and v this rank holds
  // ZeRO's formula for fp32 training (P 4, G 4, K 8 bytes per element of the flat
  // buffer, shard sizes as FlatShards computes them).
  static StateBytes expected_memory(size_t flat_floats, int stage, int world);
  // Start-up lines: layout, per-rank state bytes against ZeRO's formulas (gathered),
  // expected communication per step. Every rank calls; rank 0's text is the one to print.
  std::string report(const ParallelLayout& layout);
  // End-of-run lines: every rank's communication totals (gathered; every rank calls).
  std::string summary();
  // Stage 3: makes the whole parameter buffer valid (a caller that reads every
  // parameter; checkpoints need not: each rank writes its own range), then frees it again.
  void gather_all_params();
  void release_params();
  // Elements all-gathered per forward that are not in any block (stage 3 gathers
  // them once per micro-batch, the blocks twice): the communication volume per
  // micro-batch is 3Ψ minus this.
  size_t outer_floats() const;

  // Optimizer state for checkpoints: the whole buffer (stage 0) or the own range.
  int64_t optimizer_t() const;
  const float* m() const;
  const float* v() const;
  // Restores from full-buffer m and v (any world size wrote them): this rank keeps its range.
  void set_state(int64_t t, const float* m_full, const float* v_full);
  // Stages 1-3: restores the own range (m_own[0] is element own().begin).
  void set_own_state(int64_t t, const float* m_own, const float* v_own);

  // Checkpoints (every rank calls; zero_checkpoint.cpp). Each rank writes its own
  // range of parameters, m and v as one shard (stage 0: the same equal split, so the
  // writing is shared), rank 0 the manifest: a checkpoint of N ranks loads with M
  // ranks or in one process. `state.loss_scaler` is filled from the engine's scaler.
  std::string save_checkpoint(const std::string& run_dir, CheckpointState state, int keep_last);
  // The newest intact checkpoint (each rank hashes its share of the files); every
  // rank gets the same answer.
  std::optional<VerifiedCheckpoint> latest_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped);
  // Each rank reads only its own range (either format, any writer count), then the
  // ranks all-gather what their stage keeps whole: the parameters below stage 3, m
  // and v at stage 0. Restores the loss scaler's state when the checkpoint has one.
  CheckpointInfo load_checkpoint(const VerifiedCheckpoint& checkpoint);
  // The ranks as a checkpoint writer group (collectives over comm()).
  CheckpointGroup checkpoint_group();

 private:
  struct Bucket {
    Range r;
    int key = 0;  // completion point: the lowest block index inside (-1: embeddings)
  };
  Model& model_;
  Communicator& comm_;
  int stage_;
  FlatShards shards_;
  Range own_;
  std::vector<Bucket> buckets_;  // in backward completion order (last block first)
  std::unique_ptr<AdamW> own_opt_;           // stage 0, unless borrowed
  AdamW* full_opt_ = nullptr;                // stage 0: own_opt_ or the caller's
  std::unique_ptr<ShardedAdamW> shard_opt_;  // stages 1-3
  std::unique_ptr<LossScaler> own_scaler_;
  LossScaler* scaler_ = nullptr;             // fp16: own_scaler_ or the caller's
  std::vector<Range> blocks_;             // each block's range of the flat buffer
  Range head_, tail_;                     // outside the blocks: [0, first block), [last block end, n)
  size_t next_bucket_ = 0;                // next bucket to reduce in the current backward
  bool reducing_ = false;                 // the current micro-batch reduces its buckets
  bool overlap_ = true;
  struct InFlight {
    CommRequest req;
    Range r;
  };
  std::vector<InFlight> in_flight_;       // started bucket collectives, oldest first
  uint64_t last_bytes_ = 0, last_payload_ = 0;
  double last_seconds_ = 0;

  void setup(size_t bucket_bytes);  // buckets, block ranges, hooks (both constructors)
  StepStats step_impl(std::span<const Batch> micro_batches, float lr, float max_grad_norm);
  void poll();        // advances started collectives; frees completed stage-2 buckets
  void wait_all();    // completes every started collective

  void flush_through(int key);  // reduces every pending bucket whose key >= `key`
  void reduce_bucket(const Bucket& b);
  void gather(Range r);
  void release_param_range(Range r);
};

}  // namespace teddy::dist
