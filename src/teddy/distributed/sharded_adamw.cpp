#include "teddy/distributed/sharded_adamw.h"

#include <algorithm>

#include "teddy/kernels/backend.h"

namespace teddy::dist {

ShardedAdamW::ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, Range shard, Context ctx)
    : cfg_(cfg), ctx_(ctx), shard_(shard) {
  cfg_.validate();
  for (const ParamInfo& p : layout.params) {
    const size_t b = std::max(p.offset, shard.begin), e = std::min(p.offset + p.numel, shard.end);
    if (e <= b) continue;
    if (!runs_.empty() && runs_.back().decay == p.decay)
      runs_.back().end = e;  // merge across padding (zero grads keep zero padding zero)
    else
      runs_.push_back({b, e, p.decay});
  }
  m_.resize(std::max<size_t>(shard.size(), 1) * sizeof(float), "AdamW first moments (this rank's shard)");
  v_.resize(std::max<size_t>(shard.size(), 1) * sizeof(float), "AdamW second moments (this rank's shard)");
  m_.zero();
  v_.zero();
}

void ShardedAdamW::step(float* params, const float* shard_grads, float lr, float grad_scale) {
  const ThreadScope threads(ctx_);
  const kernels::Backend& k = ctx_.ops();
  ++t_;
  for (const Run& r : runs_) {
    const float wd = r.decay ? cfg_.weight_decay : 0.0f;
    const size_t o = r.begin - shard_.begin;
    k.adamw_update(params + r.begin, shard_grads + o, m() + o, v() + o, static_cast<int64_t>(r.end - r.begin), lr,
                   cfg_.beta1, cfg_.beta2, cfg_.eps, wd, t_, grad_scale);
  }
}

}  // namespace teddy::dist
