#pragma once
// Building blocks of the cpu attention kernels (internal): 16-float vectors, a
// vectorised exp and a small register-blocked GEMM for cache-resident tiles.
// GCC vector extensions keep this portable; explicit FMA because the project
// builds in ISO mode (-std=c++20), where GCC does not contract a*b+c.
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

// 64-byte vectors passed by value: without AVX-512 (the avx2 variant) GCC notes the
// ABI differs from an AVX-512 build. These helpers are inline and internal, so it
// does not matter.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace teddy::kernels::cpu::tile {

using v16 = float __attribute__((vector_size(64)));
using v16i = int32_t __attribute__((vector_size(64)));
constexpr int kLanes = 16;

inline v16 splat(float x) { return v16{} + x; }
inline v16 load(const float* p) { v16 v; std::memcpy(&v, p, sizeof v); return v; }  // unaligned
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

inline v16 fma(v16 a, v16 b, v16 c) {
#if defined(__AVX512F__)
  return (v16)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)  // two 8-float halves, fused as above: both variants round alike
  __m256 a2[2], b2[2], c2[2];
  std::memcpy(a2, &a, sizeof a), std::memcpy(b2, &b, sizeof b), std::memcpy(c2, &c, sizeof c);
  for (int h = 0; h < 2; ++h) c2[h] = _mm256_fmadd_ps(a2[h], b2[h], c2[h]);
  std::memcpy(&c, c2, sizeof c);
  return c;
#else
  return a * b + c;
#endif
}
inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }

inline float hmax(v16 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
inline float hsum(v16 v) {  // pairwise
  float s[kLanes];
  std::memcpy(s, &v, sizeof v);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) s[i] += s[i + w];
  return s[0];
}

// exp(x) to about 1 ulp (Cephes expf: Cody-Waite reduction, degree-5 polynomial).
// Inputs below -87 (including -inf) give exactly 0; NaN stays NaN.
inline v16 exp16(v16 x) {
  const v16 lo = splat(-87.0f), hi = splat(88.0f);
  const v16i dead = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  const v16 magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const v16 n = fma(x, splat(1.44269504088896341f), magic) - magic;
  v16 r = fma(n, splat(-0.693359375f), x);
  r = fma(n, splat(2.12194440e-4f), r);
  v16 p = splat(1.9875691500e-4f);
  p = fma(p, r, splat(1.3981999507e-3f));
  p = fma(p, r, splat(8.3334519073e-3f));
  p = fma(p, r, splat(4.1665795894e-2f));
  p = fma(p, r, splat(1.6666665459e-1f));
  p = fma(p, r, splat(5.0000001201e-1f));
  const v16 y = fma(p, r * r, r) + splat(1.0f);
  const v16i pow2 = (__builtin_convertvector(n, v16i) + 127) << 23;
  const v16 e = y * (v16)pow2;
  return (v16)((v16i)e & ~dead);
}
inline float exp1(float x) { return exp16(splat(x))[0]; }

// C[r, 0:16*NV] (+)= sum_k A(r, k) * B[k, 0:16*NV] for r < MR, with A(r, k) = A[r*ars + k*aks]
// (strides let A be a transposed tile) and B rows at B + k*ldb. With kAcc the K-term
// sum starts from zero and is added to C once: blocked summation, so a C accumulated
// over many tiles (dK, dV over every query block) keeps fp32 error low at no cost.
template <int MR, int NV, bool kAcc>
inline void gemm_micro(float* C, int ldc, const float* A, int ars, int aks, const float* B, int ldb, int K) {
  v16 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = v16{};
  for (int k = 0; k < K; ++k) {
    v16 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = load(B + static_cast<int64_t>(k) * ldb + v * kLanes);
    const float* a = A + static_cast<int64_t>(k) * aks;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const v16 ar = splat(a[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = fma(ar, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* c = C + r * ldc + v * kLanes;
      store(c, kAcc ? load(c) + acc[r][v] : acc[r][v]);
    }
}

template <int MR, bool kAcc>
inline void gemm_rows(int nv, float* C, int ldc, const float* A, int ars, int aks, const float* B, int ldb, int K) {
  switch (nv) {
    case 1: gemm_micro<MR, 1, kAcc>(C, ldc, A, ars, aks, B, ldb, K); break;
    case 2: gemm_micro<MR, 2, kAcc>(C, ldc, A, ars, aks, B, ldb, K); break;
    case 3: gemm_micro<MR, 3, kAcc>(C, ldc, A, ars, aks, B, ldb, K); break;
    default: gemm_micro<MR, 4, kAcc>(C, ldc, A, ars, aks, B, ldb, K); break;
  }
}

// C(M, N) (+)= A(M, K) B(K, N) on tiles; N must be a multiple of 16 (pad the tiles).
// kAcc false: C = AB; true: C += AB.
template <bool kAcc>
inline void gemm(float* C, int ldc, const float* A, int ars, int aks, const float* B, int ldb, int M, int N,
                 int K) {
  constexpr int MR = 6;  // 6 rows x 4 vectors = 24 accumulators of the 32 zmm registers
  for (int n0 = 0; n0 < N; n0 += 4 * kLanes) {
    const int nv = (N - n0) / kLanes < 4 ? (N - n0) / kLanes : 4;
    float* c = C + n0;
    const float* b = B + n0;
    int r = 0;
    for (; r + MR <= M; r += MR)
      gemm_rows<MR, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K);
    switch (M - r) {
      case 5: gemm_rows<5, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K); break;
      case 4: gemm_rows<4, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K); break;
      case 3: gemm_rows<3, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K); break;
      case 2: gemm_rows<2, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K); break;
      case 1: gemm_rows<1, kAcc>(nv, c + r * ldc, ldc, A + r * ars, ars, aks, b, ldb, K); break;
      default: break;
    }
  }
}

}  // namespace teddy::kernels::cpu::tile

#pragma GCC diagnostic pop
