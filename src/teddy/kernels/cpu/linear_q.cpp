// kernels::cpu linear over a quantized weight: tiles of rows of W are dequantized
// (NF4 / bf16 -> fp32, OpenMP inside) into one tile buffer and fed to sgemm with
// strided output (forward: out[:, tile]) or accumulated (backward: dinp += dout[:, tile]
// tile). The tile is about 1 MiB whatever the weight, so the fp32 working set of a
// quantized base is one tile, never a layer.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
int tile_rows(int C, int OC) {
  constexpr int kTileFloats = 1 << 18;  // 1 MiB of fp32
  return std::clamp(kTileFloats / std::max(C, 1), 16, std::max(OC, 16));
}
}  // namespace

void linear_forward_q(float* out, const float* inp, const QuantWeight* w, const float* bias, int N, int C, int OC) {
  if (N <= 0 || OC <= 0) return;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) std::memcpy(out + static_cast<int64_t>(n) * OC, bias, sizeof(float) * OC);
  }
  if (C <= 0) {
    if (!bias) std::memset(out, 0, sizeof(float) * static_cast<size_t>(N) * OC);
    return;
  }
  const int TR = tile_rows(C, OC);
  AlignedBuffer tile(static_cast<size_t>(TR) * C * sizeof(float));
  for (int r0 = 0; r0 < OC; r0 += TR) {
    const int R = std::min(TR, OC - r0);
    dequantize_rows(*w, C, r0, R, tile.as<float>());
    // out[:, r0 : r0 + R] (+)= inp @ tile^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, inp, C, tile.as<float>(), C,
                bias ? 1.0f : 0.0f, out + r0, OC);
  }
}

void linear_backward_q(float* dinp, const float* dout, const QuantWeight* w, int N, int C, int OC, Grad dinp_mode) {
  if (N <= 0 || C <= 0) return;
  if (OC <= 0) {
    if (dinp_mode == Grad::set) std::memset(dinp, 0, sizeof(float) * static_cast<size_t>(N) * C);
    return;
  }
  const int TR = tile_rows(C, OC);
  AlignedBuffer tile(static_cast<size_t>(TR) * C * sizeof(float));
  for (int r0 = 0; r0 < OC; r0 += TR) {
    const int R = std::min(TR, OC - r0);
    dequantize_rows(*w, C, r0, R, tile.as<float>());
    const float beta = (r0 == 0 && dinp_mode == Grad::set) ? 0.0f : 1.0f;
    // dinp += dout[:, r0 : r0 + R] @ tile
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, dout + r0, OC, tile.as<float>(), C, beta,
                dinp, C);
  }
}

}  // namespace teddy::kernels::cpu
