// kernels::cpu linear: OpenBLAS sgemm for the three matrix products, OpenMP for
// the bias broadcast and the (deterministic) bias-gradient column sums.
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
// Columns per dbias block: 64 floats = 4 cache lines per row, and a block's
// double accumulators stay in registers.
constexpr int kBiasBlock = 64;
}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                    int OC) {
  if (N <= 0 || OC <= 0) return;
  // Preload out with the bias and let sgemm add onto it (beta = 1): one write
  // pass instead of a separate read-modify-write pass afterwards.
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) std::memcpy(out + static_cast<int64_t>(n) * OC, bias, sizeof(float) * OC);
  }
  if (C <= 0) {
    if (!bias) std::memset(out, 0, sizeof(float) * static_cast<size_t>(N) * OC);
    return;
  }
  // out(N,OC) = inp(N,C) @ weight(OC,C)^T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f,
              out, OC);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode) {
  const bool set = dinp_mode == Grad::set, set_params = param_mode == Grad::set;
  if (N <= 0 || OC <= 0) {  // empty products: set means zero
    if (set && dinp && N > 0 && C > 0) std::memset(dinp, 0, sizeof(float) * static_cast<size_t>(N) * C);
    if (set_params && dweight && OC > 0 && C > 0) std::memset(dweight, 0, sizeof(float) * static_cast<size_t>(OC) * C);
    if (set_params && dbias && OC > 0) std::memset(dbias, 0, sizeof(float) * static_cast<size_t>(OC));
    return;
  }
  if (C > 0) {
    // dinp(N,C) += dout(N,OC) @ weight(OC,C); beta = 0 with set skips reading dinp.
    if (dinp)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                  set ? 0.0f : 1.0f, dinp, C);
    // dweight(OC,C) += dout(N,OC)^T @ inp(N,C); beta = 0 with set_params skips reading it.
    if (dweight)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                  set_params ? 0.0f : 1.0f, dweight, C);
  }
  if (dbias) {
    // dbias(OC) += colsum(dout). Threads own blocks of columns and walk the rows in
    // order, so each sum's order is fixed: deterministic for any thread count.
    const int nblocks = (OC + kBiasBlock - 1) / kBiasBlock;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nblocks; ++b) {
      const int o0 = b * kBiasBlock;
      const int w = std::min(kBiasBlock, OC - o0);
      double acc[kBiasBlock] = {};
      for (int n = 0; n < N; ++n) {
        const float* row = dout + static_cast<int64_t>(n) * OC + o0;
#pragma omp simd
        for (int j = 0; j < w; ++j) acc[j] += static_cast<double>(row[j]);
      }
      for (int j = 0; j < w; ++j)
        dbias[o0 + j] = static_cast<float>((set_params ? 0.0 : static_cast<double>(dbias[o0 + j])) + acc[j]);
    }
  }
}

}  // namespace teddy::kernels::cpu
