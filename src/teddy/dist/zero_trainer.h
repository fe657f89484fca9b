#pragma once
// Data-parallel training step with ZeRO stages 0-3 over the model's flat buffers.
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
// Overlap (default on): a bucket's collective is started (non-blocking) the moment
// the backward completes it and runs while the blocks below are in backward; every
// layer hook lets the started ones advance (communicator test), and the micro-batch
// waits for all of them before the optimizer (stage 2: before the next
// micro-batch accumulates, and the non-owned part of a bucket is freed when its
// reduce-scatter completes). Off: the same collectives, blocking.
//
// Each rank passes its own micro-batches (its slice of the global batch); the loss
// gradient is scaled by 1 / (non-ignored targets over all ranks), so the summed
// gradient is the global batch's mean-loss gradient, as in train_step.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "teddy/dist/communicator.h"
#include "teddy/dist/flat_shards.h"
#include "teddy/dist/sharded_adamw.h"
#include "teddy/model/model.h"
#include "teddy/train/adamw.h"
#include "teddy/train/train_step.h"

namespace teddy::dist {

// Bytes of model state this rank holds.
struct StateBytes {
  size_t params = 0, grads = 0, optimizer = 0;
  size_t total() const { return params + grads + optimizer; }
};

class ZeroTrainer {
 public:
  // bucket_bytes: gradient bucket size (4 bytes per float). Installs layer hooks on
  // `model` (removed by the destructor); model and comm must outlive this.
  ZeroTrainer(Model& model, const AdamWConfig& cfg, Communicator& comm, int stage,
              size_t bucket_bytes = size_t{8} << 20, bool overlap = true);
  ~ZeroTrainer();
  ZeroTrainer(const ZeroTrainer&) = delete;
  ZeroTrainer& operator=(const ZeroTrainer&) = delete;

  StepStats step(std::span<const Batch> micro_batches, float lr, float max_grad_norm);

  int stage() const { return stage_; }
  bool overlap() const { return overlap_; }
  const FlatShards& shards() const { return shards_; }
  Range own() const { return own_; }
  size_t buckets() const { return buckets_.size(); }

  // Measured: resident bytes of the parameter and gradient buffers (mincore) and
  // the optimizer state this rank allocated. Call between steps.
  StateBytes memory() const;
  // ZeRO's formula for fp32 training (P 4, G 4, K 8 bytes per element of the flat
  // buffer, shard sizes as FlatShards computes them).
  static StateBytes expected_memory(size_t flat_floats, int stage, int world);
  // Stage 3: makes the whole parameter buffer valid (checkpoints), then frees it again.
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
  std::unique_ptr<AdamW> full_opt_;       // stage 0
  std::unique_ptr<ShardedAdamW> shard_opt_;  // stages 1, 2
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

  void poll();        // advances started collectives; frees completed stage-2 buckets
  void wait_all();    // completes every started collective

  void flush_through(int key);  // reduces every pending bucket whose key >= `key`
  void reduce_bucket(const Bucket& b);
  void gather(Range r);
  void release_param_range(Range r);
};

}  // namespace teddy::dist
