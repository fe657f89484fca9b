#include "teddy/core/dtype.h"

#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "teddy/core/error.h"

namespace teddy {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
}

DType dtype_from_name(std::string_view n) {
  if (n == "f32" || n == "fp32" || n == "float32") return DType::f32;
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  if (n == "f16" || n == "fp16" || n == "float16") return DType::f16;
  throw ConfigError("dtype: expected one of fp32, bf16, fp16 (got \"" + std::string(n) + "\")");
}

f16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<f16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  if (abs >= 0x477ff000u) return static_cast<f16_t>(sign | 0x7c00u);  // rounds to >= 65520: Inf
  if (abs < 0x38800000u) {  // below 2^-14: subnormal half (or zero)
    // value = abs_float; half subnormal unit is 2^-24. Round mantissa to nearest even.
    if (abs < 0x33000000u) return static_cast<f16_t>(sign);  // < 2^-25: rounds to 0
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14 + (127 - exp - 1) ... result = mant >> (shift)
    // subnormal value in units of 2^-24: mant * 2^(exp-127-23) / 2^-24 = mant >> (126 - exp)
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<f16_t>(sign | q);
  }
  // normal: rebias exponent 127 -> 15, round 23-bit mantissa to 10 bits (nearest even)
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into exponent is correct
  return static_cast<f16_t>(sign | h);
}

float f16_to_f32(f16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  // Inf, or NaN made quiet with its payload kept (as F16C's vcvtph2ps does, so the
  // bulk conversion's vector blocks and scalar tail agree bit for bit).
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  if (exp == 0) {
    if (mant == 0) return f32_from_bits(sign);
    int e = -1;
    do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);  // normalise
    return f32_from_bits(sign | ((112u - e) << 23) | ((mant & 0x3ffu) << 13));
  }
  return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

void convert_f32_to_bf16(bf16_t* dst, const float* src, size_t n) {
#pragma omp parallel for if (n > (1u << 16)) schedule(static)
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}
void convert_f32_to_f16(f16_t* dst, const float* src, size_t n) {
#pragma omp parallel for if (n > (1u << 16)) schedule(static)
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

namespace {

constexpr size_t kPar = size_t{1} << 16;  // below this a pass is not worth a thread team
constexpr size_t kChunk = 4096;           // elements per parallel chunk

inline float through_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// fp16 in blocks of 8 with F16C (IEEE round to nearest even, Inf/NaN/subnormals as the
// scalar conversions do: test_core_dtype checks both paths agree), scalar tail.
void f16_block(float* x, const float* src, uint16_t* bits, size_t n) {
  size_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    if (bits) _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + i), h);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) {
    const f16_t h = f32_to_f16(src[i]);
    if (bits) bits[i] = h;
    x[i] = f16_to_f32(h);
  }
}

void bf16_block(float* x, const float* src, uint16_t* bits, size_t n) {
  if (bits) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      const bf16_t h = f32_to_bf16(src[i]);
      bits[i] = h;
      x[i] = bf16_to_f32(h);
    }
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) x[i] = through_bf16(src[i]);
  }
}

void widen_bf16_block(float* dst, const bf16_t* src, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

// F16C in blocks of 8 (exact, as the scalar conversion), scalar tail.
void widen_f16_block(float* dst, const f16_t* src, size_t n) {
  size_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

template <class F>
void chunked(size_t n, F&& f) {
  const size_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kPar)
  for (size_t c = 0; c < chunks; ++c) {
    const size_t lo = c * kChunk;
    f(lo, (n - lo < kChunk) ? n - lo : kChunk);
  }
}

}  // namespace

void round_through(DType t, float* x, uint16_t* bits, size_t n) {
  if (t == DType::f32) return;
  chunked(n, [&](size_t lo, size_t len) {
    uint16_t* b = bits ? bits + lo : nullptr;
    if (t == DType::bf16)
      bf16_block(x + lo, x + lo, b, len);
    else
      f16_block(x + lo, x + lo, b, len);
  });
}

void round_copy(DType t, float* dst, const float* src, size_t n) {
  if (t == DType::f32) {
    chunked(n, [&](size_t lo, size_t len) { std::memcpy(dst + lo, src + lo, len * sizeof(float)); });
    return;
  }
  chunked(n, [&](size_t lo, size_t len) {
    if (t == DType::bf16)
      bf16_block(dst + lo, src + lo, nullptr, len);
    else
      f16_block(dst + lo, src + lo, nullptr, len);
  });
}

void convert_bf16_to_f32(float* dst, const bf16_t* src, size_t n) {
  chunked(n, [&](size_t lo, size_t len) { widen_bf16_block(dst + lo, src + lo, len); });
}

void convert_f16_to_f32(float* dst, const f16_t* src, size_t n) {
  chunked(n, [&](size_t lo, size_t len) { widen_f16_block(dst + lo, src + lo, len); });
}

void widen_to_f32(DType t, float* dst, const uint16_t* src, size_t n) {
  if (t == DType::f32) throw Error("widen_to_f32: the source is 16-bit, not f32");
  if (t == DType::bf16)
    convert_bf16_to_f32(dst, src, n);
  else
    convert_f16_to_f32(dst, src, n);
}

}  // namespace teddy
