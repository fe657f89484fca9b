// kernels::ref linear: the float instantiation of ref/linear.h.
#include "teddy/kernels/ref/linear.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                    int OC) {
  linear_forward_t<float>(out, inp, weight, bias, N, C, OC);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode) {
  linear_backward_t<float>(dinp, dweight, dbias, dout, inp, weight, N, C, OC, dinp_mode == Grad::set,
                           param_mode == Grad::set);
}

}  // namespace teddy::kernels::ref
