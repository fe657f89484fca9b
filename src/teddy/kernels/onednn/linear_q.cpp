// kernels::onednn linear over a quantized frozen weight (QLoRA's base) with bf16
// products (table onednn-bf16): bf16 x bf16 -> fp32 oneDNN matmuls (matmul.h).
//  - The activation operand (inp forward, dout backward) is rounded to bf16 once per
//    call into a per-thread buffer, not once per tile (backward: a tile of dout's
//    columns at a time, each element once, so the buffer is (N, tile) not (N, OC)).
//  - A bf16 base is already the GEMM's operand: its rows are fed to oneDNN as stored,
//    no dequantization, no copy (forward: one matmul per call; backward: per tile).
//  - An NF4 base is dequantized straight to bf16 one tile of rows at a time (about
//    1 MiB of bf16, nf4_dequantize_bf16), each tile one matmul: forward into its columns
//    of out (ldc = OC, the bias's slice as the primitive's bias), backward accumulated
//    into dinp (the sum post-op after the first tile, or from the first under Grad::add).
// So the values multiplied are exactly bf16(inp) and bf16(dequantized W); accumulation
// is fp32 (tests/kernels/test_linear_q.cpp checks both, and that this is not fp32).
#include <algorithm>
#include <cstring>

#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

namespace teddy::kernels::onednn {

namespace {

// Rows per NF4 tile: about 1 MiB of bf16 (2^19 values; fits a Zen 5 / Sapphire Rapids
// core's L2 with room for the activation panel), at least 32 rows so a wide input
// (C = 8192: 64 rows) still gives the GEMM a useful N.
int tile_rows(int C, int OC) {
  constexpr int kTileValues = 1 << 19;
  return std::clamp(kTileValues / std::max(C, 1), 32, std::max(OC, 32));
}

// Per-thread growing bf16 buffers: after the first call of the largest shape nothing
// allocates (the model calls these from one thread; oneDNN threads inside).
struct Bufs {
  AlignedBuffer act, tile;
};
bf16_t* grow(AlignedBuffer& b, size_t values) {
  if (b.bytes() < values * sizeof(bf16_t)) b.resize(values * sizeof(bf16_t), "bf16 quantized-GEMM buffer");
  return b.as<bf16_t>();
}
Bufs& bufs() {
  thread_local Bufs b;
  return b;
}

}  // namespace

void linear_forward_q_bf16(float* out, const float* inp, const QuantWeight* w, const float* bias, int N, int C,
                           int OC) {
  if (N <= 0 || OC <= 0 || C <= 0) return cpu::linear_forward_q(out, inp, w, bias, N, C, OC);
  Bufs& b = bufs();
  bf16_t* x16 = grow(b.act, static_cast<size_t>(N) * C);
  convert_f32_to_bf16(x16, inp, static_cast<size_t>(N) * C);
  // out(N,OC) = inp(N,C) @ W(OC,C)^T: B(k,n) = W[n*C + k]
  if (w->kind == QuantWeight::Kind::bf16) {
    matmul({.M = N, .N = OC, .K = C, .a_sm = C, .a_sk = 1, .b_sk = 1, .b_sn = C, .c = out, .bias = bias,
            .accumulate = false, .bf16 = true, .a16 = x16, .b16 = w->bf16});
    return;
  }
  const int TR = tile_rows(C, OC);
  bf16_t* tile = grow(b.tile, static_cast<size_t>(TR) * C);
  for (int r0 = 0; r0 < OC; r0 += TR) {
    const int R = std::min(TR, OC - r0);
    dequantize_rows_bf16(*w, C, r0, R, tile);
    // out[:, r0 : r0 + R] = inp @ tile^T (+ bias[r0 : r0 + R])
    matmul({.M = N, .N = R, .K = C, .a_sm = C, .a_sk = 1, .b_sk = 1, .b_sn = C, .c = out + r0,
            .bias = bias ? bias + r0 : nullptr, .accumulate = false, .bf16 = true, .ldc = OC, .a16 = x16,
            .b16 = tile});
  }
}

void linear_backward_q_bf16(float* dinp, const float* dout, const QuantWeight* w, int N, int C, int OC,
                            Grad dinp_mode) {
  if (N <= 0 || OC <= 0 || C <= 0) return cpu::linear_backward_q(dinp, dout, w, N, C, OC, dinp_mode);
  // dinp(N,C) (+)= dout(N,OC) @ W(OC,C), a tile of W's rows (dout's columns) at a time,
  // for a bf16 base too: dout's bf16 copy is then (N, tile), not (N, OC) (the classifier's
  // chunk: 256 x 128256 for llama-1B, 66 MB of bf16 otherwise). Each element of dout is
  // still rounded once per call.
  const int TR = std::min(tile_rows(C, OC), OC);
  const bool nf4 = w->kind == QuantWeight::Kind::nf4;
  Bufs& b = bufs();
  bf16_t* d16 = grow(b.act, static_cast<size_t>(N) * TR);
  bf16_t* tile = nf4 ? grow(b.tile, static_cast<size_t>(TR) * C) : nullptr;
  for (int r0 = 0; r0 < OC; r0 += TR) {
    const int R = std::min(TR, OC - r0);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * R > 65536)
    for (int n = 0; n < N; ++n) {
      const float* src = dout + static_cast<int64_t>(n) * OC + r0;
      bf16_t* dst = d16 + static_cast<int64_t>(n) * R;
      for (int j = 0; j < R; ++j) dst[j] = f32_to_bf16(src[j]);
    }
    if (nf4) dequantize_rows_bf16(*w, C, r0, R, tile);
    const bf16_t* wt = nf4 ? tile : w->bf16 + static_cast<int64_t>(r0) * C;  // bf16 base: its rows as stored
    // dinp (+)= dout[:, r0 : r0 + R] @ W[r0 : r0 + R, :]
    matmul({.M = N, .N = C, .K = R, .a_sm = R, .a_sk = 1, .b_sk = C, .b_sn = 1, .c = dinp,
            .accumulate = r0 > 0 || dinp_mode == Grad::add, .bf16 = true, .a16 = d16, .b16 = wt});
  }
}

}  // namespace teddy::kernels::onednn
