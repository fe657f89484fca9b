#include "teddy/kernels/ref/rope.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void rope_forward(float* out, const float* inp, const int32_t* pos, int N, int row_stride, int n_heads,
                  int HS, const double* inv_freq) {
  rope_forward_t<float>(out, inp, pos, N, row_stride, n_heads, HS, inv_freq);
}

void rope_backward(float* dinp, const float* dout, const int32_t* pos, int N, int row_stride, int n_heads,
                   int HS, const double* inv_freq) {
  rope_backward_t<float>(dinp, dout, pos, N, row_stride, n_heads, HS, inv_freq);
}

}  // namespace teddy::kernels::ref
