#include "teddy/train/train_step.h"

#include <string>

#include "teddy/core/error.h"
#include "teddy/train/grad_clip.h"

namespace teddy {

int64_t count_targets(const Batch& b) {
  if (b.targets == nullptr) throw Error("train_step: a micro-batch has no targets");
  const int64_t n = static_cast<int64_t>(b.B) * b.T;
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += b.targets[i] != kIgnoreIndex;
  return c;
}

StepStats train_step(Model& model, AdamW& opt, std::span<const Batch> micro_batches, float lr,
                     float max_grad_norm) {
  if (micro_batches.empty()) throw Error("train_step: no micro-batches");
  if (opt.size() != model.flat_size())
    throw Error("train_step: optimizer has " + std::to_string(opt.size()) +
                " floats, model " + std::to_string(model.flat_size()));
  int64_t total = 0;
  for (const Batch& b : micro_batches) total += count_targets(b);
  const float dloss = total > 0 ? static_cast<float>(1.0 / static_cast<double>(total)) : 0.0f;

  model.zero_grad();
  LossSum sum;
  for (const Batch& b : micro_batches) {
    const LossSum s = model.forward_backward(b, dloss);
    sum.sum += s.sum;
    sum.count += s.count;
  }
  if (sum.count != total)
    throw Error("train_step: model counted " + std::to_string(sum.count) +
                " targets, expected " + std::to_string(total));

  StepStats st;
  st.loss = sum.mean();
  st.tokens = total;
  st.grad_norm = grad_norm(model.grads(), model.flat_size());
  st.lr = lr;
  opt.step(model.params(), model.grads(), lr, clip_scale(st.grad_norm, max_grad_norm));
  return st;
}

}  // namespace teddy
