#pragma once
// Element types. 16-bit conversions round to nearest even and keep NaN/Inf (f16_to_f32
// returns a NaN quiet, payload kept, as F16C does).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace teddy {

enum class DType : uint8_t { f32, bf16, f16 };

constexpr size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
std::string_view dtype_name(DType t);
// Parses "f32"/"fp32"/"float32", "bf16"/"bfloat16", "f16"/"fp16"/"float16"; throws ConfigError.
DType dtype_from_name(std::string_view name);

using bf16_t = uint16_t;  // raw bits
using f16_t = uint16_t;   // raw bits

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline bf16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x0040u);  // quiet NaN, sign kept
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // nearest even; Inf stays Inf
  return static_cast<bf16_t>((u + rounding) >> 16);
}
inline float bf16_to_f32(bf16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

f16_t f32_to_f16(float f);
float f16_to_f32(f16_t h);

// Bulk conversions (OpenMP-parallel for large n; the widenings use F16C where built
// with it). Bit for bit the scalar conversions above.
void convert_f32_to_bf16(bf16_t* dst, const float* src, size_t n);
void convert_bf16_to_f32(float* dst, const bf16_t* src, size_t n);
void convert_f32_to_f16(f16_t* dst, const float* src, size_t n);
void convert_f16_to_f32(float* dst, const f16_t* src, size_t n);

// Mixed-precision passes (OpenMP-parallel for large n). t == f32: round_through is a
// no-op, round_copy a copy, widen_to_f32 throws (its source is 16-bit).
// Rounds x to `t` in place (x[i] = widen(narrow(x[i]))), and, when bits != nullptr,
// stores the 16-bit patterns there as well: what a forward saves and goes on with.
void round_through(DType t, float* x, uint16_t* bits, size_t n);
// Rounds src to `t` into dst (the weights a matrix product reads).
void round_copy(DType t, float* dst, const float* src, size_t n);
// dst[i] = widen(src[i]): exact (convert_bf16_to_f32 / convert_f16_to_f32).
void widen_to_f32(DType t, float* dst, const uint16_t* src, size_t n);

}  // namespace teddy
