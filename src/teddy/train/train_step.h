#pragma once
// One optimizer step in one process over a caller's model and AdamW: a thin wrapper
// over the step engine (dist::ZeroTrainer at stage 0 over a SelfCommunicator), so
// target counting, loss scaling, the norm and clipping exist once. The trainers
// keep one engine for the whole run; this builds one per call (tests, the PyTorch
// comparison, tools).
#include <span>

#include "teddy/distributed/zero_trainer.h"  // StepStats, count_targets
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"

namespace teddy {

class LossScaler;

// The gradient is the mean over every non-ignored target of the whole global batch
// (every micro-batch's loss gradient is scaled by 1/total, not by 1/its own count:
// averaging per micro-batch and then over micro-batches overweights short ones),
// exactly as if it were one big batch, whatever the split. Then the global norm,
// clipping (max_grad_norm <= 0: off) folded into AdamW's grad_scale, AdamW step.
// Throws Error if there are no micro-batches, one has no targets, or the optimizer
// does not fit the model. With no non-ignored target at all the gradient is zero
// (the step still advances the optimizer).
StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm);
// The same with dynamic loss scaling: the loss gradient is multiplied by
// scaler.scale(), the reported norm, clipping and AdamW see the unscaled gradient,
// and a step whose gradients are not all finite is skipped (optimizer untouched)
// and reported with skipped = true.
StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm, LossScaler& scaler);

}  // namespace teddy
