#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"

using namespace teddy;

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1+2^-7: ties to even (1).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625f);
}

TEST(DType, Bf16KeepsSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(inf)), inf);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-inf)), -inf);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  // A NaN whose payload sits only in the low 16 bits must stay NaN, not become Inf.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0x7f800001u)))));
  // The largest finite float rounds to Inf in bf16 (as PyTorch does).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::max())), inf);
}

TEST(DType, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = f16_to_f32(static_cast<f16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), h) << "half bits " << h;
  }
}

// Reference f32 -> f16 via double arithmetic: nearest representable, ties to even.
static double f16_nearest(double x) {
  if (std::fabs(x) >= 65520.0) return std::copysign(INFINITY, x);
  const double a = std::fabs(x);
  int e;
  std::frexp(a, &e);                       // a = m * 2^e, m in [0.5, 1)
  int exp = std::max(e - 1, -14);          // unbiased exponent, subnormals share -14
  const double ulp = std::ldexp(1.0, exp - 10);
  return std::copysign(std::nearbyint(a / ulp) * ulp, x);  // default rounding: ties to even
}

TEST(DType, F16RoundsToNearestEvenOnRandomFloats) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    const float f = f32_from_bits(bits(rng) & 0xc7ffffffu);  // exponents up to ~2^16
    if (std::isnan(f)) continue;
    const double want = f16_nearest(f);
    const float got = f16_to_f32(f32_to_f16(f));
    ASSERT_EQ(static_cast<double>(got), want) << "x=" << f;
    ++checked;
  }
  EXPECT_GT(checked, 100000);
  EXPECT_EQ(f16_to_f32(f32_to_f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(65520.0f))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -25))), 0.0f);  // tie to even: 0
}

TEST(DType, NamesParseAndBadNameIsRefused) {
  EXPECT_EQ(dtype_from_name("bf16"), DType::bf16);
  EXPECT_EQ(dtype_from_name("fp16"), DType::f16);
  EXPECT_EQ(dtype_from_name("fp32"), DType::f32);
  EXPECT_THROW(dtype_from_name("fp8"), ConfigError);
}

// The bulk widenings (F16C blocks of 8 where built with it, OpenMP-parallel above
// 2^16 elements) give the scalar conversions' bits for every 16-bit pattern, NaN
// payloads included, and widen_to_f32 is the same function per type.
TEST(DType, BulkWideningEqualsScalarForEveryPattern) {
  std::vector<uint16_t> all(3 * 65536 + 5);  // past the parallel threshold, with a tail after the 8-blocks
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  std::vector<float> f16(all.size()), bf16(all.size()), w16(all.size()), wbf16(all.size());
  convert_f16_to_f32(f16.data(), all.data(), all.size());
  convert_bf16_to_f32(bf16.data(), all.data(), all.size());
  widen_to_f32(DType::f16, w16.data(), all.data(), all.size());
  widen_to_f32(DType::bf16, wbf16.data(), all.data(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(f32_bits(f16[i]), f32_bits(f16_to_f32(all[i]))) << "half bits " << all[i];
    ASSERT_EQ(f32_bits(bf16[i]), f32_bits(bf16_to_f32(all[i]))) << "bf16 bits " << all[i];
    ASSERT_EQ(f32_bits(w16[i]), f32_bits(f16[i])) << i;
    ASSERT_EQ(f32_bits(wbf16[i]), f32_bits(bf16[i])) << i;
  }
  EXPECT_THROW(widen_to_f32(DType::f32, w16.data(), all.data(), 1), Error);
}
