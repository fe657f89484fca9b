#pragma once
// Backend-neutral kernel interface. Each device namespace implements the same
// op list (ops.inc): kernels::ref (plain loops, double accumulation: the source
// of truth), kernels::cpu (OpenMP + OpenBLAS: the fast path) and, later,
// kernels::cuda. A kernel's files share its name across backends and tests:
// kernels/ref/rmsnorm.cpp, kernels/cpu/rmsnorm.cpp, tests/kernels/test_rmsnorm.cpp.
#include <cstdint>

namespace teddy::kernels {

// How a backward writes an input gradient that takes it: `add` (+=, the default and
// the convention) or `set` (=, for a buffer's first writer, which then needs no
// zeroing pass beforehand). linear_backward also takes one for its parameter gradients,
// so a step's first micro-batch can write them without a zero_grad pass.
enum class Grad { add, set };

namespace ref {
#include "teddy/kernels/ops.inc"
}  // namespace ref

namespace cpu {
#include "teddy/kernels/ops.inc"
}  // namespace cpu

}  // namespace teddy::kernels
