#include "teddy/train/optim/lr_schedule.h"

#include <cmath>
#include <numbers>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

void LrSchedule::validate() const {
  if (!std::isfinite(lr) || lr <= 0)
    throw ConfigError("lr: must be finite and > 0 (got " + std::to_string(lr) + ")");
  if (total_steps < 1)
    throw ConfigError("total_steps: must be >= 1 (got " + std::to_string(total_steps) + ")");
  if (warmup_steps < 0 || warmup_steps > total_steps)
    throw ConfigError("warmup_steps: must be in [0, total_steps] (got " +
                      std::to_string(warmup_steps) + ", total_steps " + std::to_string(total_steps) +
                      ")");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1))
    throw ConfigError("min_lr_ratio: must be in [0, 1] (got " + std::to_string(min_lr_ratio) + ")");
}

float LrSchedule::at(int64_t step) const {
  if (step < 0) throw Error("lr schedule: step must be >= 0 (got " + std::to_string(step) + ")");
  const double peak = lr;
  if (step < warmup_steps)
    return static_cast<float>(peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps));
  if (!cosine) return lr;
  const double min_lr = peak * static_cast<double>(min_lr_ratio);
  if (step >= total_steps) return static_cast<float>(min_lr);
  const double ratio = static_cast<double>(step - warmup_steps) /
                       static_cast<double>(total_steps - warmup_steps);
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return static_cast<float>(min_lr + coeff * (peak - min_lr));
}

}  // namespace teddy
