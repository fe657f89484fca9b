#include "teddy/train/train_step.h"

#include "teddy/distributed/communicator.h"
#include "teddy/train/optim/loss_scaler.h"

namespace teddy {

namespace {

StepStats step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr, float max_grad_norm,
               LossScaler* scaler) {
  dist::SelfCommunicator one;
  dist::ZeroTrainer engine(model, opt, one);
  engine.set_loss_scaler(scaler);
  return engine.step(micro_batches, lr, max_grad_norm);
}

}  // namespace

StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm) {
  return step(model, opt, micro_batches, lr, max_grad_norm, nullptr);
}

StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm, LossScaler& scaler) {
  return step(model, opt, micro_batches, lr, max_grad_norm, &scaler);
}

}  // namespace teddy
