#pragma once
// One oneDNN matmul C(M,N) (+)= A(M,K) B(K,N) [+ bias(N)], row-major C with leading
// dimension N (or ldc: a column block of a wider C), A and B read through strides (a transpose is a stride swap, never a copy).
// The primitive for a shape is created once, on its first call, and cached per calling
// thread with the memory objects it executes on (only the data pointers change per
// call); its scratchpad is ours (scratchpad_mode::user: one growing buffer per thread),
// so after each shape's first call the hot path creates and allocates nothing.
//
// bf16: A and B are given as fp32 and rounded to bf16 (round to nearest even, as
// core/dtype.h) into per-thread buffers right before the product, which accumulates
// in fp32 (bf16 x bf16 -> f32: AVX512_BF16 vdpbf16ps or AMX tiles, chosen by oneDNN).
// An operand the caller already holds in bf16 (a weight copy, a saved activation) is
// passed as bits (MatmulArgs::a16 / b16) and not rounded again.
#include <cstddef>
#include <cstdint>

namespace teddy::kernels::onednn {

struct MatmulArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* a = nullptr;  // A(m,k) at a[m*a_sm + k*a_sk]
  int64_t a_sm = 0, a_sk = 0;
  const float* b = nullptr;  // B(k,n) at b[k*b_sk + n*b_sn]
  int64_t b_sk = 0, b_sn = 0;
  float* c = nullptr;           // C(m,n) at c[m*ldc + n]
  const float* bias = nullptr;  // (N) or nullptr
  bool accumulate = false;      // C += A B (oneDNN's sum post-op) instead of C = A B
  bool bf16 = false;            // round A and B to bf16, accumulate in fp32
  int64_t ldc = 0;              // C's row stride; 0: N (contiguous)
  // bf16 only: operands already in bf16 (bit patterns, same strides as a / b), used as
  // they are instead of rounding a / b (which are then not read and may be nullptr): the
  // quantized linears round their activations once per call and dequantize W straight to
  // bf16; the linear16 ops pass the bf16 weight copy and saved 16-bit activations.
  const uint16_t* a16 = nullptr;
  const uint16_t* b16 = nullptr;
};

void matmul(const MatmulArgs& m);

// x (n floats) rounded to bf16 into the calling thread's own buffer, valid until the
// thread's next call: an operand two products share (a backward's dout) is rounded
// once. Distinct from matmul's internal buffers.
const uint16_t* round_shared(const float* x, size_t n);

// Whether this CPU (as capped by ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) computes bf16
// products natively: oneDNN's effective ISA is AVX512_CORE_BF16 or AMX. Elsewhere
// oneDNN would emulate them (slower than fp32), so the bf16 GEMMs are not offered.
bool native_bf16();
// oneDNN's version and effective ISA, e.g. "oneDNN 2.6.3, ISA avx512_core_amx".
const char* describe();

}  // namespace teddy::kernels::onednn
