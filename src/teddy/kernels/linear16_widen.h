#pragma once
// linear16_forward / linear16_backward (ops.inc) for a backend whose GEMMs are fp32
// (ref, cpu, onednn): the bf16 operands are widened (an fp32 input and dout rounded
// to bf16 first, as the contract says), then the backend's own fp32 linear runs on
// them. The products are of the same bf16 values a native bf16 GEMM reads, so this is
// also the reference the native path is tested against. Allocates per call: these
// backends are only handed bf16 operands by tests (the model takes this path only on
// a table whose gemm_inputs is bf16).
#include <cstdint>
#include <vector>

#include "teddy/core/dtype.h"
#include "teddy/kernels/backend.h"

namespace teddy::kernels {

// x (n floats) = the bf16 values of the operand: inp16 widened, or inp rounded.
inline std::vector<float> bf16_operand(const float* inp, const uint16_t* inp16, size_t n) {
  std::vector<float> x(n);
  if (inp16)
    convert_bf16_to_f32(x.data(), inp16, n);
  else
    round_copy(DType::bf16, x.data(), inp, n);
  return x;
}

template <class Fwd>
void linear16_forward_widened(Fwd fwd, float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16,
                              const float* bias, int N, int C, int OC) {
  const std::vector<float> x = bf16_operand(inp, inp16, static_cast<size_t>(N) * C);
  const std::vector<float> w = bf16_operand(nullptr, weight16, static_cast<size_t>(OC) * C);
  fwd(out, x.data(), w.data(), bias, N, C, OC);
}

template <class Bwd>
void linear16_backward_widened(Bwd bwd, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                               Grad param_mode) {
  const std::vector<float> d = bf16_operand(dout, nullptr, static_cast<size_t>(N) * OC);
  const std::vector<float> w = dinp ? bf16_operand(nullptr, weight16, static_cast<size_t>(OC) * C) : std::vector<float>();
  const std::vector<float> x = dweight ? bf16_operand(inp, inp16, static_cast<size_t>(N) * C) : std::vector<float>();
  if (dinp || dweight)
    bwd(dinp, dweight, nullptr, d.data(), dweight ? x.data() : nullptr, dinp ? w.data() : nullptr, N, C, OC, dinp_mode,
        param_mode);
  // The bias gradient is a reduction: of the fp32 dout, unrounded.
  if (dbias) bwd(nullptr, nullptr, dbias, dout, nullptr, nullptr, N, C, OC, dinp_mode, param_mode);
}

}  // namespace teddy::kernels
