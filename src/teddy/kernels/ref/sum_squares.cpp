// kernels::ref sum_squares: the float instantiation of ref/sum_squares.h.
#include "teddy/kernels/ref/sum_squares.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

double sum_squares(const float* x, int64_t n) { return sum_squares_t<float>(x, n); }

}  // namespace teddy::kernels::ref
