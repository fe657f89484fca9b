#pragma once
// A backend is a value: a named table of function pointers, one per op of ops.inc,
// generated from that list so its signatures cannot drift from the backends'. Code
// outside kernels/ calls ops through a table it was handed (usually inside a
// teddy::Context, kernels/context.h), never through a backend's namespace:
//
//   const kernels::Backend& k = kernels::backend("cpu");
//   k.linear_forward(out, inp, w, b, N, C, OC);
//
// Tables are constants (one per compiled-in backend); nothing here is mutable.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "teddy/core/dtype.h"
#include "teddy/kernels/quant_weight.h"

namespace teddy::kernels {

// How a backward writes an input gradient that takes it: `add` (+=, the convention)
// or `set` (=, for a buffer's first writer, which then needs no zeroing pass
// beforehand). linear_backward also takes one for its parameter gradients, so a step's
// first micro-batch can write them without a zero_grad pass.
enum class Grad { add, set };

// Caller-owned scratch for the ops that take one (sized by their *_workspace query).
// Empty or too small: the op allocates its own for the call.
struct Workspace {
  float* data = nullptr;
  size_t floats = 0;
};

struct Backend {
  const char* name;     // "ref", "cpu": what kernels::backend() looks up
  const char* summary;  // one line for listings
  // What linear_forward / linear_backward round their matrix inputs to before the
  // products (which accumulate in fp32): f32 (not rounded) everywhere but onednn-bf16.
  // Its tolerances derive from this dtype's epsilon instead of fp32's.
  DType gemm_inputs;
#define TEDDY_OP(R, OP, ARGS) R(*OP) ARGS;
#include "teddy/kernels/ops.inc"
};

// Every backend usable in this process, in a fixed order: ref (plain loops, double
// accumulation: the source of truth), cpu (OpenMP + OpenBLAS), onednn (cpu with the
// linear GEMMs on oneDNN), then onednn-bf16 where the CPU computes bf16 natively
// (AVX512_BF16 or AMX, as capped by ONEDNN_MAX_CPU_ISA; absent elsewhere).
std::span<const Backend* const> available_backends();
// The backend called `name`; throws ConfigError naming the available ones.
const Backend& backend(std::string_view name);
// The one a Context uses unless told otherwise: cpu.
const Backend& default_backend();

// The GEMM library of a training run (`[train] gemm`, `--gemm`): openblas, onednn, or
// auto (the measured rule of docs/TRAINING_OPTIMIZATIONS.md, "GEMM library": onednn for
// bf16 products where the CPU has them natively, and for fp32 where oneDNN has AVX-512
// but OpenBLAS runs AVX2 kernels; openblas otherwise, AVX2-only CPUs included).
enum class Gemm { openblas, onednn, automatic };
// "openblas" | "onednn" | "auto"; anything else: ConfigError naming `field`.
Gemm gemm_from_name(std::string_view name, std::string_view field);
std::string_view gemm_name(Gemm g);
// The backend a run with that GEMM choice and precision trains on: cpu (OpenBLAS),
// onednn (fp32 products) or, for bf16 on a CPU with native bf16, onednn-bf16 (bf16
// products, the bf16 speed-up; elsewhere bf16 stays a storage format on fp32 products).
const Backend& gemm_backend(Gemm g, DType precision);
// The backend of a LoRA run, whose frozen base's products follow `compute`
// (lora.compute): "bf16" gives onednn-bf16 (bf16 x bf16 -> fp32 products over the base,
// NF4 dequantized straight to bf16, a bf16 base read as stored; the adapters stay fp32),
// a ConfigError naming `field` where that cannot run (no native bf16, or gemm openblas);
// "fp32" gives gemm_backend(g, precision); "auto" is bf16 for a quantized base
// (`quantized_base`: bf16 or NF4 storage, whose own error dwarfs bf16 rounding) where
// native and g is not openblas, fp32 otherwise. Another value: ConfigError naming field.
const Backend& lora_gemm_backend(Gemm g, DType precision, std::string_view compute, bool quantized_base,
                                 std::string_view field);
// The GEMM library and ISA behind a backend, for reports: "OpenBLAS 0.3.21 ... ;
// kernels SkylakeX" or "oneDNN 2.6.3, ISA avx512_core_amx, bf16 inputs".
std::string gemm_description(const Backend& b);

}  // namespace teddy::kernels
