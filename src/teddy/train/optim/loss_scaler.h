#pragma once
// Dynamic loss scaling for fp16 training (Micikevicius et al. 2018; PyTorch's
// GradScaler): the loss gradient is multiplied by `scale` so small fp16 gradients do
// not flush to zero; the optimizer divides it back out. If any gradient comes back
// inf/NaN the step is skipped and the scale halved; after `growth_interval`
// consecutive clean steps it doubles. Powers of two keep scaling exact in floating
// point (s*g and g*(c/s) round like g*c), so with no overflow a scaled step equals an
// unscaled one bit for bit.
#include <cstddef>
#include <cstdint>

namespace teddy {

struct LossScalerConfig {
  float init_scale = 65536.0f;     // 2^16
  int64_t growth_interval = 1000;  // clean steps before doubling
  // Throws ConfigError naming the field: init_scale a finite power of two > 0, interval >= 1.
  void validate() const;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerConfig& cfg = {});

  float scale() const { return scale_; }
  // Records one step's outcome and says whether to apply it: finite -> true (and
  // maybe double the scale); not finite -> false, the scale halves, skipped() grows.
  bool update(bool grads_finite);

  int64_t skipped() const { return skipped_; }   // steps skipped so far
  int64_t clean_streak() const { return streak_; }
  const LossScalerConfig& config() const { return cfg_; }
  // For checkpoints: the scale, the clean streak and the skip count.
  void set_state(float scale, int64_t streak, int64_t skipped);

  // True if all n floats are finite.
  static bool all_finite(const float* x, size_t n);

 private:
  LossScalerConfig cfg_;
  float scale_;
  int64_t streak_ = 0, skipped_ = 0;
};

}  // namespace teddy
