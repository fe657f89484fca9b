#pragma once
// Learning-rate schedule: linear warmup, then cosine decay to min_lr, then
// constant (nanoGPT / llm.c): for step s (0-based),
//   s < warmup:          lr * (s + 1) / warmup
//   warmup <= s < total: min_lr + 0.5 * (1 + cos(pi * (s - warmup) / (total - warmup))) * (lr - min_lr)
//   s >= total:          min_lr,   where min_lr = lr * min_lr_ratio.
#include <cstdint>

namespace teddy {

struct LrSchedule {
  float lr = 6e-4f;           // peak
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;    // where the cosine reaches min_lr
  float min_lr_ratio = 0.1f;  // min_lr = lr * min_lr_ratio
  bool cosine = true;         // false: constant lr after warmup

  // Throws ConfigError naming the field: lr finite > 0, 0 <= warmup_steps <= total_steps,
  // total_steps >= 1, 0 <= min_lr_ratio <= 1.
  void validate() const;
  float at(int64_t step) const;  // computed in double; step < 0 throws Error
};

}  // namespace teddy
