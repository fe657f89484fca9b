#pragma once
// Reference AdamW (decoupled weight decay, Loshchilov & Hutter 2017), computed in
// double whatever the storage type. Matches ops.inc / PyTorch torch.optim.AdamW:
//   g = grad * grad_scale; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2
//   mhat = m / (1 - b1^t); vhat = v / (1 - b2^t)
//   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
#include <cmath>
#include <cstdint>

namespace teddy::kernels::ref {

template <class T>
void adamw_update_t(T* params, const T* grads, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
                    double eps, double weight_decay, int64_t t, double grad_scale) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(grads[i]) * grad_scale;
    const double mi = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * g;
    const double vi = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * g * g;
    const double p = static_cast<double>(params[i]);
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    params[i] = static_cast<T>(p - lr * ((mi / bc1) / (std::sqrt(vi / bc2) + eps) + weight_decay * p));
  }
}

}  // namespace teddy::kernels::ref
