// Mixed-precision passes (round_through, round_copy, widen_to_f32): every backend,
// bit for bit, against the scalar conversions of core/dtype.h that define the
// rounding, over odd sizes (below and above the OpenMP threshold), specials
// (NaN, Inf, subnormals, overflow to Inf) and misaligned pointers.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"

namespace {

using namespace teddy::test;
using teddy::DType;

class PrecisionBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(PrecisionBackend);

uint16_t narrow(DType t, float x) { return t == DType::bf16 ? teddy::f32_to_bf16(x) : teddy::f32_to_f16(x); }
float widen(DType t, uint16_t h) { return t == DType::bf16 ? teddy::bf16_to_f32(h) : teddy::f16_to_f32(h); }

std::vector<float> inputs(size_t n, uint64_t seed) {
  auto x = randn(n, seed, 100.0);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::nanf(""), 1e-40f, -3e-8f, 70000.0f, std::numeric_limits<float>::max(), 1.0f + 1.0f / 256};
  for (size_t i = 0; i < x.size() && i < std::size(specials); ++i) x[i * 7 % x.size()] = specials[i];
  return x;
}

// Bit patterns, so NaNs compare equal to themselves.
std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

TEST_P(PrecisionBackend, MatchesTheScalarConversionsBitForBit) {
  for (DType t : {DType::bf16, DType::f16}) {
    for (size_t n : {size_t{1}, size_t{17}, size_t{1000}, size_t{300001}}) {
      SCOPED_TRACE(::testing::Message() << teddy::dtype_name(t) << " n=" << n);
      const auto x = inputs(n, 7 + n);
      std::vector<float> want(n);
      std::vector<uint16_t> want16(n);
      for (size_t i = 0; i < n; ++i) {
        want16[i] = narrow(t, x[i]);
        want[i] = widen(t, want16[i]);
      }
      Misaligned through(x), copy(n), widened(n);
      std::vector<uint16_t> got16(n);
      kb->round_through(t, through.p(), got16.data(), n);
      EXPECT_EQ(bits_of(through.vec()), bits_of(want));
      EXPECT_EQ(got16, want16);
      Misaligned src(x);
      kb->round_copy(t, copy.p(), src.p(), n);
      EXPECT_EQ(bits_of(copy.vec()), bits_of(want));
      EXPECT_EQ(bits_of(src.vec()), bits_of(x));  // the source is left alone
      kb->widen_to_f32(t, widened.p(), want16.data(), n);
      EXPECT_EQ(bits_of(widened.vec()), bits_of(want));
      Misaligned no_bits(x);
      kb->round_through(t, no_bits.p(), nullptr, n);  // bits may be nullptr
      EXPECT_EQ(bits_of(no_bits.vec()), bits_of(want));
    }
  }
}

TEST_P(PrecisionBackend, F32IsANoOpACopyOrAnError) {
  const auto x = inputs(33, 3);
  std::vector<float> y = x, c(x.size());
  kb->round_through(DType::f32, y.data(), nullptr, y.size());
  EXPECT_EQ(bits_of(y), bits_of(x));
  kb->round_copy(DType::f32, c.data(), x.data(), x.size());
  EXPECT_EQ(bits_of(c), bits_of(x));
  std::vector<uint16_t> h(4);
  EXPECT_THROW(kb->widen_to_f32(DType::f32, c.data(), h.data(), h.size()), teddy::Error);
}

}  // namespace
