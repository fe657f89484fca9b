#pragma once
// The backends' namespaces, for code inside kernels/ and for the kernel tests: each
// device namespace declares the same op list (ops.inc): kernels::ref (plain loops,
// double accumulation: the source of truth), kernels::cpu (OpenMP + OpenBLAS: the fast
// path) and, later, kernels::cuda. A kernel's files share its name across backends and
// tests: kernels/ref/rmsnorm.cpp, kernels/cpu/rmsnorm.cpp, tests/kernels/test_rmsnorm.cpp.
// Everything outside kernels/ calls ops through a kernels::Backend table (backend.h).
#include <cstddef>
#include <cstdint>

#include "teddy/kernels/backend.h"

namespace teddy::kernels {

namespace ref {
#define TEDDY_OP(R, OP, ARGS) R OP ARGS;
#include "teddy/kernels/ops.inc"
const Backend& table();  // this namespace's ops as a Backend (ref/backend.cpp)
}  // namespace ref

namespace cpu {
#define TEDDY_OP(R, OP, ARGS) R OP ARGS;
#include "teddy/kernels/ops.inc"
// The cpu backend: the table of the kernel variant this CPU runs (cpu_variant.h). In
// the portable build kernels/cpu/*.cpp are compiled twice: here at the x86-64-v3
// baseline (AVX2) and into cpu_avx512 (below) for x86-64-v4.
const Backend& table();          // kernels/cpu_variant.cpp: picked once, at first use
const Backend& variant_table();  // cpu/backend.cpp: this namespace's ops (the AVX2 ones)
}  // namespace cpu

// The AVX-512 variant of namespace cpu: the same sources (cpu/isa_variant.h), defined
// only in the portable build (TEDDY_NATIVE=OFF). Call it through cpu_variants().
namespace cpu_avx512 {
#define TEDDY_OP(R, OP, ARGS) R OP ARGS;
#include "teddy/kernels/ops.inc"
const Backend& variant_table();
}  // namespace cpu_avx512

}  // namespace teddy::kernels
