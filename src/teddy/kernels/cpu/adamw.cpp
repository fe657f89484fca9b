// kernels::cpu adamw_update: one fused, OpenMP-parallel pass over params, grads
// and both moments (memory-bound: 16 bytes read, 12 written per element).
#include <cmath>
#include <cstdint>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t t, float grad_scale) {
  // Bias corrections in double (beta2^t for t ~ 1e5 needs it), folded into multipliers.
  const float inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t))));
  const float inv_bc2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t))));
  const float one_m_b1 = 1.0f - beta1, one_m_b2 = 1.0f - beta2;
  // sqrt stays scalar unless built with -fno-math-errno; the loop is memory-bound either way.
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + one_m_b1 * g;
    const float vi = beta2 * v[i] + one_m_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = params[i];
    params[i] = p - lr * ((mi * inv_bc1) / (std::sqrt(vi * inv_bc2) + eps) + weight_decay * p);
  }
}

}  // namespace teddy::kernels::cpu
