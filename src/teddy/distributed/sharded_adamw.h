#pragma once
// AdamW over one contiguous range [begin, end) of the flat parameter buffer, with m
// and v held for that range only (ZeRO-1 and up). The update is elementwise, so the
// shards of W ranks together compute bit for bit what one AdamW computes on the
// whole buffer from the same gradients.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/distributed/flat_shards.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"

namespace teddy::dist {

class ShardedAdamW {
 public:
  // The update runs through ctx's backend (the model's).
  ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, Range shard, Context ctx = {});

  // params: the whole flat buffer (only [begin, end) is written); grads: the shard's
  // gradients, grads[0] belonging to element `begin`.
  void step(float* params, const float* shard_grads, float lr, float grad_scale);

  const AdamWConfig& config() const { return cfg_; }
  Range shard() const { return shard_; }
  int64_t t() const { return t_; }
  float* m() { return m_.as<float>(); }
  float* v() { return v_.as<float>(); }
  const float* m() const { return m_.as<float>(); }
  const float* v() const { return v_.as<float>(); }
  size_t bytes() const { return 2 * shard_.size() * sizeof(float); }
  void set_t(int64_t t) { t_ = t; }

 private:
  struct Run {
    size_t begin = 0, end = 0;  // absolute offsets, clipped to the shard
    bool decay = true;
  };
  AdamWConfig cfg_;
  Context ctx_;
  Range shard_;
  std::vector<Run> runs_;
  AlignedBuffer m_, v_;
  int64_t t_ = 0;
};

}  // namespace teddy::dist
