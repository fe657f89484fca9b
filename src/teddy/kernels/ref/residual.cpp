#include "teddy/kernels/ref/residual.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  residual_forward_t<float>(out, a, b, n);
}

void accumulate(float* dst, const float* src, int64_t n) { accumulate_t<float>(dst, src, n); }

}  // namespace teddy::kernels::ref
