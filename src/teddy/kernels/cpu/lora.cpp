// kernels::cpu LoRA and dropout. The LoRA products are thin (one side is the rank r),
// so each is one sgemm with strided operands: a part's columns of out and dout are
// addressed with the leading dimension OC, no copies. Dropout: an OpenMP loop over
// the counter-based mask (kernels/dropout_mask.h), so any thread split gives the
// same mask.
#include <cblas.h>

#include <cstdint>
#include <cstring>

#include "teddy/kernels/dropout_mask.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

void lora_forward(float* out, float* u, const float* x, const float* A, const float* B, int N, int C, int OC,
                  int r, int P, const int* parts, float scale) {
  const int R = P * r;
  if (N <= 0 || R <= 0) return;
  if (C > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, x, C, A, C, 0.0f, u, R);  // u = x A^T
  else
    std::memset(u, 0, sizeof(float) * static_cast<size_t>(N) * R);
  int brow = 0;
  for (int p = 0; p < P; ++p) {
    const int off = parts[2 * p], np = parts[2 * p + 1];
    if (np > 0)  // out_p += scale * u_p B_p^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, np, r, scale, u + p * r, R,
                  B + static_cast<int64_t>(brow) * r, r, 1.0f, out + off, OC);
    brow += np;
  }
}

void lora_backward(float* dx, float* dA, float* dB, float* du, const float* dout, const float* x, const float* u,
                   const float* A, const float* B, int N, int C, int OC, int r, int P, const int* parts,
                   float scale, Grad dx_mode, Grad param_mode) {
  const int R = P * r;
  const float pbeta = param_mode == Grad::set ? 0.0f : 1.0f;
  if (R <= 0) return;
  int brow = 0;
  for (int p = 0; p < P; ++p) {
    const int off = parts[2 * p], np = parts[2 * p + 1];
    float* dBp = dB + static_cast<int64_t>(brow) * r;
    if (N > 0 && np > 0) {
      // du_p(N, r) = scale * dout_p(N, np) B_p(np, r)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, np, scale, dout + off, OC,
                  B + static_cast<int64_t>(brow) * r, r, 0.0f, du + p * r, R);
      // dB_p(np, r) (+)= scale * dout_p^T u_p
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, np, r, N, scale, dout + off, OC, u + p * r, R, pbeta, dBp,
                  r);
    } else {
      for (int n = 0; n < N; ++n) std::memset(du + static_cast<int64_t>(n) * R + p * r, 0, sizeof(float) * r);
      if (param_mode == Grad::set && np > 0) std::memset(dBp, 0, sizeof(float) * static_cast<size_t>(np) * r);
    }
    brow += np;
  }
  if (C <= 0) return;
  if (N > 0) {
    // dA(R, C) (+)= du^T x
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, N, 1.0f, du, R, x, C, pbeta, dA, C);
    // dx(N, C) (+)= du A
    if (dx)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, du, R, A, C,
                  dx_mode == Grad::set ? 0.0f : 1.0f, dx, C);
  } else if (param_mode == Grad::set) {
    std::memset(dA, 0, sizeof(float) * static_cast<size_t>(R) * C);
  }
}

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t seed) {
  const uint32_t thr = dropout_threshold(p);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? inp[i] * keep_scale : 0.0f;
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t seed, Grad mode) {
  const uint32_t thr = dropout_threshold(p);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
  const bool set = mode == Grad::set;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float d = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? dout[i] * keep_scale : 0.0f;
    dinp[i] = set ? d : dinp[i] + d;
  }
}

}  // namespace teddy::kernels::cpu
