#pragma once
// A frozen linear weight (OC, C) stored quantized (QLoRA's base): NF4 with double
// quantization (core/nf4.h) or bf16. The linear_*_q ops read it a tile of rows at a
// time, so no full fp32 copy of the weight ever exists: dequantized to fp32 for sgemm
// (cpu), or to bf16 for oneDNN's bf16 GEMM (onednn-bf16), where a bf16 weight is read
// as stored.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "teddy/core/dtype.h"
#include "teddy/core/nf4.h"

namespace teddy::kernels {

// One NF4 tensor holding rows [row0, row0 + rows) of a weight. teddy fuses q|k|v (and
// LLaMA's gate|up) into one linear, but bitsandbytes quantizes each Hugging Face module
// alone (its own absmax blocks, double-quantization offset and second-level blocks),
// so a fused weight is stored as one part per module: the same bytes bitsandbytes
// writes (io/hf_bnb4.h), and a teddy-made base equals what it would make.
struct Nf4Part {
  int row0 = 0, rows = 0;
  Nf4Tensor q;  // numel = rows * C
};

struct QuantWeight {
  enum class Kind { nf4, bf16 };
  Kind kind = Kind::nf4;
  const Nf4Part* nf4 = nullptr;    // Kind::nf4: nf4_parts parts, ascending, covering every row once
  int nf4_parts = 0;
  const uint16_t* bf16 = nullptr;  // Kind::bf16: (OC, C) bit patterns
};

// Rows [r0, r0 + R) of the (OC, C) weight as floats into out (R, C).
inline void dequantize_rows(const QuantWeight& w, int C, int r0, int R, float* out) {
  const int64_t begin = static_cast<int64_t>(r0) * C, end = begin + static_cast<int64_t>(R) * C;
  if (w.kind == QuantWeight::Kind::nf4) {
    for (int i = 0; i < w.nf4_parts; ++i) {  // the parts the rows cross
      const Nf4Part& p = w.nf4[i];
      const int lo = std::max(r0, p.row0), hi = std::min(r0 + R, p.row0 + p.rows);
      if (lo >= hi) continue;
      nf4_dequantize(p.q, static_cast<int64_t>(lo - p.row0) * C, static_cast<int64_t>(hi - p.row0) * C,
                     out + static_cast<int64_t>(lo - r0) * C);
    }
  } else {
    convert_bf16_to_f32(out, w.bf16 + begin, static_cast<size_t>(end - begin));
  }
}

// The same rows as bf16 bit patterns (R, C), for GEMMs that take bf16 inputs: NF4 is
// dequantized straight to bf16 (each value the rounding of dequantize_rows' float); a
// bf16 weight needs no conversion, so its GEMMs read w.bf16 itself and never call this
// (here it is a copy, for completeness).
inline void dequantize_rows_bf16(const QuantWeight& w, int C, int r0, int R, uint16_t* out) {
  const int64_t begin = static_cast<int64_t>(r0) * C, end = begin + static_cast<int64_t>(R) * C;
  if (w.kind == QuantWeight::Kind::nf4) {
    for (int i = 0; i < w.nf4_parts; ++i) {  // the parts the rows cross, as dequantize_rows
      const Nf4Part& p = w.nf4[i];
      const int lo = std::max(r0, p.row0), hi = std::min(r0 + R, p.row0 + p.rows);
      if (lo >= hi) continue;
      nf4_dequantize_bf16(p.q, static_cast<int64_t>(lo - p.row0) * C, static_cast<int64_t>(hi - p.row0) * C,
                          out + static_cast<int64_t>(lo - r0) * C);
    }
  } else {
    std::copy(w.bf16 + begin, w.bf16 + end, out);
  }
}

// encoder_forward over a quantized token table: out(N, C) = wte[tokens] + wpe[pos]
// (wpe nullptr: no positions), each row dequantized alone. The same floats as
// encoder_forward over the dequantized table (one fp32 add per element).
inline void encoder_forward_q(float* out, const int32_t* tokens, const int32_t* pos, const QuantWeight& wte,
                              const float* wpe, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 16)
  for (int i = 0; i < N; ++i) {
    float* o = out + static_cast<size_t>(i) * C;
    dequantize_rows(wte, C, tokens[i], 1, o);
    if (wpe)
      for (int c = 0; c < C; ++c) o[c] += wpe[static_cast<size_t>(pos[i]) * C + c];
  }
}

}  // namespace teddy::kernels
