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
#define TEDDY_OP(R, OP, ARGS) R(*OP) ARGS;
#include "teddy/kernels/ops.inc"
};

// Every backend compiled into this build, in a fixed order: ref (plain loops, double
// accumulation: the source of truth) first, then cpu (OpenMP + OpenBLAS). Each further
// backend (a oneDNN ISA path, CUDA) appends itself here when it lands.
std::span<const Backend* const> available_backends();
// The backend called `name`; throws ConfigError naming the available ones.
const Backend& backend(std::string_view name);
// The one a Context uses unless told otherwise: cpu.
const Backend& default_backend();

}  // namespace teddy::kernels
