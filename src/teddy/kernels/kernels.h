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
const Backend& table();  // cpu/backend.cpp
}  // namespace cpu

}  // namespace teddy::kernels
