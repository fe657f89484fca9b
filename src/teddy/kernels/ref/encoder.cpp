#include "teddy/kernels/ref/encoder.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void encoder_forward(float* out, const int32_t* tokens, const int32_t* pos, const float* wte,
                     const float* wpe, int N, int C) {
  encoder_forward_t<float>(out, tokens, pos, wte, wpe, N, C);
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                      const int32_t* pos, int N, int C) {
  encoder_backward_t<float>(dwte, dwpe, dout, tokens, pos, N, C);
}

}  // namespace teddy::kernels::ref
