#pragma once
// One optimizer step over a global batch given as micro-batches (gradient
// accumulation): the gradient is the mean over every non-ignored target of the
// whole global batch, exactly as if it were one big batch, whatever the split.
#include <cstdint>
#include <span>

#include "teddy/model/model.h"
#include "teddy/train/adamw.h"

namespace teddy {

struct StepStats {
  double loss = 0;       // mean loss over the step's non-ignored targets
  int64_t tokens = 0;    // non-ignored targets in the step
  double grad_norm = 0;  // global L2 norm before clipping
  float lr = 0;          // learning rate used
  bool skipped = false;  // with a loss scaler: gradients overflowed, no update was made
  float loss_scale = 1;  // the scale this step's backward ran with
};

class LossScaler;

// Counts the non-ignored targets of all micro-batches first, so each one's loss
// gradient is scaled by 1/total (not 1/its own count: averaging per micro-batch
// and then over micro-batches overweights short ones). Then forward + backward each
// micro-batch (the first overwrites the gradients, Grad::set: no zero_grad pass), global grad norm, clip (max_grad_norm <= 0: off)
// folded into AdamW's grad_scale, AdamW step. Throws Error if a micro-batch has no
// targets. With no non-ignored target at all the gradient is zero (the step still
// advances the optimizer).
StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm);
// The same with dynamic loss scaling: the loss gradient is multiplied by
// scaler.scale(), the reported norm, clipping and AdamW see the unscaled gradient
// (1/scale folded into grad_scale), and a step whose gradients are not all finite
// is skipped (optimizer untouched) and reported with skipped = true.
StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm, LossScaler& scaler);

// Non-ignored targets (!= kIgnoreIndex) of a batch.
int64_t count_targets(const Batch& b);

}  // namespace teddy
