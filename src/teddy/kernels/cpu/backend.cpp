// The cpu backend's table: kernels::cpu's ops in ops.inc order.
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

const Backend& table() { return kTable; }

}  // namespace teddy::kernels::cpu
