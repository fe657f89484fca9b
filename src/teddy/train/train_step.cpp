#include "teddy/train/train_step.h"

#include <cmath>
#include <string>

#include "teddy/core/error.h"
#include "teddy/train/grad_clip.h"
#include "teddy/train/loss_scaler.h"

namespace teddy {

int64_t count_targets(const Batch& b) {
  if (b.targets == nullptr) throw Error("train_step: a micro-batch has no targets");
  const int64_t n = static_cast<int64_t>(b.B) * b.T;
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += b.targets[i] != kIgnoreIndex;
  return c;
}

namespace {

StepStats step_impl(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                    float max_grad_norm, LossScaler* scaler) {
  if (micro_batches.empty()) throw Error("train_step: no micro-batches");
  if (opt.size() != model.flat_size())
    throw Error("train_step: optimizer has " + std::to_string(opt.size()) +
                " floats, model " + std::to_string(model.flat_size()));
  int64_t total = 0;
  for (const Batch& b : micro_batches) total += count_targets(b);
  const float scale = scaler ? scaler->scale() : 1.0f;
  const float dloss = total > 0 ? static_cast<float>(1.0 / static_cast<double>(total)) * scale : 0.0f;

  // The first micro-batch overwrites the gradients (no zero_grad pass; bit-identical).
  LossSum sum;
  for (const Batch& b : micro_batches) {
    const bool first = &b == micro_batches.data();
    const LossSum s = model.forward_backward(b, dloss, first ? kernels::Grad::set : kernels::Grad::add);
    sum.sum += s.sum;
    sum.count += s.count;
  }
  if (sum.count != total)
    throw Error("train_step: model counted " + std::to_string(sum.count) +
                " targets, expected " + std::to_string(total));

  StepStats st;
  st.loss = sum.mean();
  st.tokens = total;
  st.lr = lr;
  st.loss_scale = scale;
  const double scaled_norm = grad_norm(model.grads(), model.flat_size(), model.context());
  st.grad_norm = scaled_norm / scale;
  // The norm is accumulated in double, which float squares cannot overflow: it is
  // finite exactly when every gradient is.
  if (scaler && !scaler->update(std::isfinite(scaled_norm))) {
    st.skipped = true;  // overflow: keep the parameters and moments, retry with half the scale
    return st;
  }
  // scale is a power of two, so (scale*g) * (c/scale) rounds exactly like g * c.
  opt.step(model.params(), model.grads(), lr, clip_scale(st.grad_norm, max_grad_norm) / scale);
  return st;
}

}  // namespace

StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm) {
  return step_impl(model, opt, micro_batches, lr, max_grad_norm, nullptr);
}

StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm, LossScaler& scaler) {
  return step_impl(model, opt, micro_batches, lr, max_grad_norm, &scaler);
}

}  // namespace teddy
