#include "teddy/kernels/ref/layernorm.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps) {
  layernorm_forward_t<float>(out, mean, rstd, inp, weight, bias, N, C, eps);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  layernorm_backward_t<float>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace teddy::kernels::ref
