#include "teddy/train/optim/adamw.h"

#include <cmath>
#include <cstring>
#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"

namespace teddy {

void AdamWConfig::validate() const {
  auto bad = [](const char* field, const char* rule, float v) {
    throw ConfigError(std::string(field) + ": " + rule + " (got " + std::to_string(v) + ")");
  };
  if (!std::isfinite(lr) || lr < 0) bad("lr", "must be finite and >= 0", lr);
  if (!(beta1 >= 0 && beta1 < 1)) bad("beta1", "must be in [0, 1)", beta1);
  if (!(beta2 >= 0 && beta2 < 1)) bad("beta2", "must be in [0, 1)", beta2);
  if (!std::isfinite(eps) || eps <= 0) bad("eps", "must be finite and > 0", eps);
  if (!std::isfinite(weight_decay) || weight_decay < 0)
    bad("weight_decay", "must be finite and >= 0", weight_decay);
}

AdamW::AdamW(const ParamLayout& layout, const AdamWConfig& cfg, Context ctx)
    : cfg_(cfg), ctx_(ctx), n_(layout.total) {
  cfg_.validate();
  for (const ParamInfo& p : layout.params) {
    if (p.numel == 0) continue;
    if (!runs_.empty() && runs_.back().decay == p.decay && runs_.back().end <= p.offset)
      runs_.back().end = p.offset + p.numel;  // merge: one long kernel call per run
    else
      runs_.push_back({p.offset, p.offset + p.numel, p.decay});
  }
  m_.resize(n_ * sizeof(float), "AdamW first moments");
  v_.resize(n_ * sizeof(float), "AdamW second moments");
}

void AdamW::step(float* params, const float* grads, float lr, float grad_scale) {
  const ThreadScope threads(ctx_);
  const kernels::Backend& k = ctx_.ops();
  ++t_;
  for (const Run& r : runs_) {
    const float wd = r.decay ? cfg_.weight_decay : 0.0f;
    k.adamw_update(params + r.begin, grads + r.begin, m() + r.begin, v() + r.begin,
                   static_cast<int64_t>(r.end - r.begin), lr, cfg_.beta1, cfg_.beta2, cfg_.eps, wd, t_,
                   grad_scale);
  }
}

void AdamW::set_state(int64_t t, const float* m, const float* v) {
  if (t < 0) throw Error("AdamW::set_state: step count must be >= 0 (got " + std::to_string(t) + ")");
  t_ = t;
  std::memcpy(m_.data(), m, n_ * sizeof(float));
  std::memcpy(v_.data(), v, n_ * sizeof(float));
}

void AdamW::reset() {
  t_ = 0;
  m_.zero();
  v_.zero();
}

}  // namespace teddy
