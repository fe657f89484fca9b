// The ref backend's table: kernels::ref's ops (the float instantiations of the
// reference templates) in ops.inc order.
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

namespace {
constexpr Backend kTable = {
    "ref",
    "plain loops with double accumulation, one thread (the source of truth; slow)",
    DType::f32,
#define TEDDY_OP(R, OP, ARGS) &ref::OP,
#include "teddy/kernels/ops.inc"
};
}  // namespace

const Backend& table() { return kTable; }

}  // namespace teddy::kernels::ref
