#include "teddy/kernels/ref/gelu.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void gelu_forward(float* out, const float* inp, int64_t n) { gelu_forward_t<float>(out, inp, n); }

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, Grad mode) {
  gelu_backward_t<float>(dinp, dout, inp, n, mode == Grad::set);
}

}  // namespace teddy::kernels::ref
