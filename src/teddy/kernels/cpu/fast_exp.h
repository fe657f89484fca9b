#pragma once
// A vectorizable expf. glibc only exposes its SIMD expf to GCC under -ffast-math,
// so a loop calling std::exp stays scalar; this inline version (Cephes expf:
// round-to-nearest range reduction, degree-6 polynomial, 2^n by exponent bits)
// vectorizes under `#pragma omp simd` and is within ~2 ulp of std::exp on
// [-87.3, 88.7]. Inputs are clamped to that range: below it the result is
// ~1.2e-38 (not 0, harmless in a softmax sum), above it ~FLT_MAX; NaN stays NaN.
#include <bit>
#include <cstdint>

namespace teddy::kernels::cpu {

#pragma omp declare simd
inline float fast_expf(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.72283f;
  x = x < kLo ? kLo : x;  // NaN fails both compares and passes through
  x = x > kHi ? kHi : x;
  // n = round(x / ln2) via the 1.5*2^23 trick (exact in round-to-nearest mode).
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  // r = x - n*ln2 in two parts (Cody-Waite) so r keeps full precision.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n in [-126, 128]: 2^128 would overflow the exponent field, so scale in two halves.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  return p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
}

}  // namespace teddy::kernels::cpu
