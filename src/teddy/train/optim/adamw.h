#pragma once
// AdamW (Loshchilov & Hutter 2017, decoupled weight decay) over the model's flat
// parameter buffer. The moments m and v are flat buffers with the parameters'
// layout, so a checkpoint saves three equal ranges and ZeRO shards them alike.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/kernels/context.h"
#include "teddy/model/model.h"

namespace teddy {

struct AdamWConfig {
  float lr = 6e-4f;  // peak learning rate (the schedule's input; step() takes the current lr)
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // applied only to tensors whose ParamInfo::decay is set
  // Throws ConfigError naming the field: betas in [0,1), eps > 0, wd >= 0, lr >= 0, all finite.
  void validate() const;
};

class AdamW {
 public:
  // The update runs through ctx's backend (pass the model's: model.context()).
  AdamW(const ParamLayout& layout, const AdamWConfig& cfg, Context ctx = {});

  // One update: t += 1, then for every tensor p -= lr*(mhat/(sqrt(vhat)+eps) + wd*p),
  // with wd = weight_decay for decayed tensors and 0 otherwise. The gradient used is
  // grads * grad_scale (clipping folded in). params and grads span layout.total floats.
  void step(float* params, const float* grads, float lr, float grad_scale = 1.0f);

  const AdamWConfig& config() const { return cfg_; }
  const Context& context() const { return ctx_; }
  int64_t t() const { return t_; }  // completed steps
  size_t size() const { return n_; }  // floats in m and in v (== layout.total)
  float* m() { return m_.as<float>(); }
  float* v() { return v_.as<float>(); }
  const float* m() const { return m_.as<float>(); }
  const float* v() const { return v_.as<float>(); }
  // Restores a checkpoint: t and (copies of) m and v, each size() floats.
  void set_state(int64_t t, const float* m, const float* v);
  void reset();  // t = 0, moments zero

 private:
  // A contiguous run of the flat buffer with one decay setting (neighbouring
  // tensors merged; the zero padding between them stays zero under AdamW).
  struct Run {
    size_t begin = 0, end = 0;
    bool decay = true;
  };
  AdamWConfig cfg_;
  Context ctx_;
  size_t n_ = 0;
  std::vector<Run> runs_;
  AlignedBuffer m_, v_;
  int64_t t_ = 0;
};

}  // namespace teddy
