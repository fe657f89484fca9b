// kernels::cpu linear16: cpu's linear on the widened bf16 operands (linear16_widen.h).
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/linear16_widen.h"

namespace teddy::kernels::cpu {

void linear16_forward(float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16, const float* bias,
                      int N, int C, int OC) {
  linear16_forward_widened(&cpu::linear_forward, out, inp, inp16, weight16, bias, N, C, OC);
}

void linear16_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                       Grad param_mode) {
  linear16_backward_widened(&cpu::linear_backward, dinp, dweight, dbias, dout, inp, inp16, weight16, N, C, OC,
                            dinp_mode, param_mode);
}

}  // namespace teddy::kernels::cpu
