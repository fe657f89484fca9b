#pragma once
// Branch-free math that GCC vectorizes inside `#pragma omp simd` loops. libm's
// expf/tanhf/sin/cos are scalar calls unless built with -ffast-math, which we avoid.
#include <bit>
#include <cstdint>

namespace teddy::kernels::cpu {

// e^x in float, within ~1 ulp (Cephes expf polynomial, Cody-Waite reduction), for
// x in [-87.3, 88] only (outside it the 2^n scaling overflows); see exp_approx.
inline float exp_approx_unclamped(float x) {
  // n = round(x / ln2) by adding and removing 1.5 * 2^23; r = x - n ln2, |r| <= ln2/2.
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);  // y * 2^n
}

// e^x with x clamped to [-87.3, 88] first, so the result is always a finite normal
// number (e^-100 gives ~1e-38, not 0); NaN stays NaN.
inline float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;
  return exp_approx_unclamped(x);
}

// e = e^-z and s = 1 / (1 + e) = sigmoid(z), so 1 - s = e * s without cancellation.
// z is clamped to [-80, 80]: sigmoid is then 1 or ~1e-35 (never denormal).
struct sigmoid_parts {
  float s, e;
};
inline sigmoid_parts sigmoid_approx(float z) {
  z = z < -80.0f ? -80.0f : z;
  z = z > 80.0f ? 80.0f : z;
  const float e = exp_approx_unclamped(-z);
  return {1.0f / (1.0f + e), e};
}

// sin and cos of a double angle, to ~1e-11 absolute for |a| up to ~1e5 (so exact
// once rounded to float). Reduces to [-pi, pi] then folds to [-pi/2, pi/2], where
// Taylor series to degree 15 / 14 converge to double-ish accuracy.
inline void sincos_approx(double a, double& sin_out, double& cos_out) {
  constexpr double kTwoPi = 6.283185307179586476925;
  constexpr double kInvTwoPi = 0.159154943091895335769;
  constexpr double kPi = 3.141592653589793238463, kHalfPi = 1.570796326794896619231;
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  const double k = (a * kInvTwoPi + kRound) - kRound;
  double r = a - k * kTwoPi;  // [-pi, pi]
  // sin(pi - r) = sin r, cos(pi - r) = -cos r (and the mirror image below -pi/2).
  const bool hi = r > kHalfPi, lo = r < -kHalfPi;
  r = hi ? kPi - r : (lo ? -kPi - r : r);
  const double csign = (hi || lo) ? -1.0 : 1.0;
  const double r2 = r * r;
  double s = -7.647163731819816e-13;  // -1/15!
  s = s * r2 + 1.605904383682161e-10;  // 1/13!
  s = s * r2 - 2.505210838544172e-08;  // -1/11!
  s = s * r2 + 2.755731922398589e-06;  // 1/9!
  s = s * r2 - 1.984126984126984e-04;  // -1/7!
  s = s * r2 + 8.333333333333333e-03;  // 1/5!
  s = s * r2 - 1.666666666666667e-01;  // -1/3!
  sin_out = r + r * r2 * s;
  double c = 1.147074559772972e-11;    // 1/14!
  c = c * r2 - 2.087675698786810e-09;  // -1/12!
  c = c * r2 + 2.755731922398589e-07;  // 1/10!
  c = c * r2 - 2.480158730158730e-05;  // -1/8!
  c = c * r2 + 1.388888888888889e-03;  // 1/6!
  c = c * r2 - 4.166666666666667e-02;  // -1/4!
  c = c * r2 + 5.000000000000000e-01;  // 1/2!
  cos_out = csign * (1.0 - r2 * c);
}

}  // namespace teddy::kernels::cpu
