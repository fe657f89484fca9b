#include "teddy/kernels/ref/rmsnorm.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
  rmsnorm_forward_t<float>(out, rstd, inp, weight, N, C, eps);
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  rmsnorm_backward_t<float>(dinp, dweight, dout, inp, weight, rstd, N, C);
}

}  // namespace teddy::kernels::ref
