// The cpu backend's table: kernels::cpu's ops in ops.inc order (compiled once per kernel
// variant, cpu/isa_variant.h; kernels/cpu_variant.cpp picks one).
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr Backend kTable = {
    "cpu",
    "OpenMP + OpenBLAS (sgemm), FlashAttention with planned workspace",
    DType::f32,
#define TEDDY_OP(R, OP, ARGS) &cpu::OP,
#include "teddy/kernels/ops.inc"
};
}  // namespace

const Backend& variant_table() { return kTable; }

}  // namespace teddy::kernels::cpu
