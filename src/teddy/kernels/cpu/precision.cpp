// kernels::cpu mixed-precision passes: the OpenMP-parallel bulk conversions of
// core/dtype (F16C widening where built with it), bit for bit the scalar ones.
#include "teddy/core/dtype.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

void round_through(DType t, float* x, uint16_t* bits, size_t n) { teddy::round_through(t, x, bits, n); }

void round_copy(DType t, float* dst, const float* src, size_t n) { teddy::round_copy(t, dst, src, n); }

void widen_to_f32(DType t, float* dst, const uint16_t* src, size_t n) { teddy::widen_to_f32(t, dst, src, n); }

}  // namespace teddy::kernels::cpu
