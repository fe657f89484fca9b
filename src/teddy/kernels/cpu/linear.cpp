// kernels::cpu linear: OpenBLAS sgemm for the three matrix products, OpenMP for
// the bias broadcast and the (deterministic) bias-gradient column sums.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
// dbias(OC) (+)= colsum(dout). Each thread owns one contiguous range of columns and
// walks the rows in order, reading its whole range of each row (a long contiguous
// run the prefetchers follow; 64-column blocks strided by OC floats ran at ~6 GB/s),
// into double accumulators of at most kBiasChunk columns (16 KiB, L1-resident). Every
// column's sum runs over the rows in order whatever the split: deterministic for any
// thread count, and bit-identical to a serial loop.
constexpr int kBiasChunk = 2048;
constexpr int kBiasAlign = 16;  // columns: ranges start on cache lines

void bias_grad(float* dbias, const float* dout, int N, int OC, bool set) {
#pragma omp parallel
  {
    const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const int units = (OC + kBiasAlign - 1) / kBiasAlign;
    const int lo = std::min(OC, units * tid / nth * kBiasAlign);
    const int hi = std::min(OC, units * (tid + 1) / nth * kBiasAlign);
    double acc[kBiasChunk];
    for (int c0 = lo; c0 < hi; c0 += kBiasChunk) {
      const int w = std::min(kBiasChunk, hi - c0);
      std::fill(acc, acc + w, 0.0);
      for (int n = 0; n < N; ++n) {
        const float* row = dout + static_cast<int64_t>(n) * OC + c0;
#pragma omp simd
        for (int j = 0; j < w; ++j) acc[j] += static_cast<double>(row[j]);
      }
      for (int j = 0; j < w; ++j)
        dbias[c0 + j] = static_cast<float>((set ? 0.0 : static_cast<double>(dbias[c0 + j])) + acc[j]);
    }
  }
}
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
    // dinp(N,C) += dout(N,OC) @ weight(OC,C); with set, beta = 0: the old contents are
    // ignored (NaN is fine), though OpenBLAS still zeroes C in a pass of its own.
    if (dinp)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                  set ? 0.0f : 1.0f, dinp, C);
    // dweight(OC,C) += dout(N,OC)^T @ inp(N,C); with set_params, beta = 0 likewise.
    if (dweight)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                  set_params ? 0.0f : 1.0f, dweight, C);
  }
  if (dbias) bias_grad(dbias, dout, N, OC, set_params);
}

}  // namespace teddy::kernels::cpu
