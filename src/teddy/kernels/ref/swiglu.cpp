#include "teddy/kernels/ref/swiglu.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void swiglu_forward(float* out, const float* gate_up, int N, int H) {
  swiglu_forward_t<float>(out, gate_up, N, H);
}

void swiglu_backward(float* dgate_up, const float* dout, const float* gate_up, int N, int H, Grad mode) {
  swiglu_backward_t<float>(dgate_up, dout, gate_up, N, H, mode == Grad::set);
}

}  // namespace teddy::kernels::ref
