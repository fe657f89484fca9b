// kernels::ref adamw_update: the float instantiation of ref/adamw.h.
#include "teddy/kernels/ref/adamw.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  adamw_update_t<float>(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
}

}  // namespace teddy::kernels::ref
