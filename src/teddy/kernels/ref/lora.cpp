// kernels::ref LoRA and dropout: the float instantiations of ref/lora.h.
#include "teddy/kernels/ref/lora.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void lora_forward(float* out, float* u, const float* x, const float* A, const float* B, int N, int C, int OC,
                  int r, int P, const int* parts, float scale) {
  lora_forward_t<float>(out, u, x, A, B, N, C, OC, r, P, parts, scale);
}

void lora_backward(float* dx, float* dA, float* dB, float* du, const float* dout, const float* x, const float* u,
                   const float* A, const float* B, int N, int C, int OC, int r, int P, const int* parts,
                   float scale, Grad dx_mode, Grad param_mode) {
  lora_backward_t<float>(dx, dA, dB, du, dout, x, u, A, B, N, C, OC, r, P, parts, scale, dx_mode == Grad::set,
                         param_mode == Grad::set);
}

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed) {
  dropout_forward_t<float>(out, inp, n, p, seed);
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, Grad mode) {
  dropout_backward_t<float>(dinp, dout, n, p, seed, mode == Grad::set);
}

}  // namespace teddy::kernels::ref
