// kernels::ref mixed-precision passes: one element at a time through the scalar
// conversions of core/dtype.h (the definition of the rounding).
#include <string>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

namespace {
uint16_t narrow(DType t, float x) { return t == DType::bf16 ? f32_to_bf16(x) : f32_to_f16(x); }
float widen(DType t, uint16_t h) { return t == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h); }
}  // namespace

void round_through(DType t, float* x, uint16_t* bits, size_t n) {
  if (t == DType::f32) return;
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = narrow(t, x[i]);
    x[i] = widen(t, h);
    if (bits) bits[i] = h;
  }
}

void round_copy(DType t, float* dst, const float* src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = t == DType::f32 ? src[i] : widen(t, narrow(t, src[i]));
}

void widen_to_f32(DType t, float* dst, const uint16_t* src, size_t n) {
  if (t == DType::f32) throw Error("widen_to_f32: the source is 16-bit, not f32");
  for (size_t i = 0; i < n; ++i) dst[i] = widen(t, src[i]);
}

}  // namespace teddy::kernels::ref
