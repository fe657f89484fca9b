#include "teddy/train/optim/loss_scaler.h"

#include <cfloat>
#include <cmath>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

void LossScalerConfig::validate() const {
  int e = 0;
  const float m = std::frexp(init_scale, &e);
  if (!std::isfinite(init_scale) || init_scale <= 0 || m != 0.5f)
    throw ConfigError("loss_scale: must be a finite power of two > 0 (got " + std::to_string(init_scale) + ")");
  if (growth_interval < 1)
    throw ConfigError("loss_scale_growth_interval: must be >= 1 (got " + std::to_string(growth_interval) + ")");
}

LossScaler::LossScaler(const LossScalerConfig& cfg) : cfg_(cfg), scale_(cfg.init_scale) { cfg_.validate(); }

bool LossScaler::update(bool grads_finite) {
  if (!grads_finite) {
    ++skipped_;
    streak_ = 0;
    // Halve, but stay a normal float: a scale of 0 would zero every gradient for good.
    if (scale_ > 2 * FLT_MIN) scale_ *= 0.5f;
    return false;
  }
  if (++streak_ >= cfg_.growth_interval) {
    streak_ = 0;
    if (scale_ < FLT_MAX / 2) scale_ *= 2.0f;
  }
  return true;
}

void LossScaler::set_state(float scale, int64_t streak, int64_t skipped) {
  LossScalerConfig c = cfg_;
  c.init_scale = scale;
  c.validate();
  if (streak < 0 || skipped < 0) throw Error("LossScaler::set_state: counts must be >= 0");
  scale_ = scale;
  streak_ = streak;
  skipped_ = skipped;
}

bool LossScaler::all_finite(const float* x, size_t n) {
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (n > 65536)
  for (size_t i = 0; i < n; ++i) ok = ok && std::isfinite(x[i]);
  return ok;
}

}  // namespace teddy
