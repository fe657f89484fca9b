#pragma once
// Included first by each generated source of a kernel variant (the portable build's
// AVX-512 one: build/kernels_avx512/<file>.cpp = this header, then
// kernels/cpu/<file>.cpp), which CMake compiles with -march=x86-64-v4. It does two things.
//
// 1. Everything shared with the rest of the binary is compiled here at the x86-64-v3
//    baseline, before the variant's own code: the standard library, OpenMP, CBLAS and
//    teddy's headers outside kernels/cpu/. Their inline functions and template
//    instantiations are emitted as COMDAT copies that the linker folds into one per
//    program, keeping whichever it meets first; an AVX-512 copy of, say,
//    std::vector<float>'s growth path would then run on an AVX2-only CPU and die with
//    SIGILL. Under the pragma those copies hold no AVX-512 code whichever one wins.
//    (tests/kernels/test_cpu_variant.cpp checks the binary: AVX-512 instructions only in
//    functions of namespace cpu_avx512.)
// 2. `cpu` is renamed TEDDY_VARIANT_NS (cpu_avx512) for the rest of the file, so the
//    variant's functions, its helpers in kernels/cpu/*.h and its table get their own
//    names: the kernel sources stay one copy, written for namespace cpu.
//
// A kernel source that includes a header not listed here still builds, but that
// header's inline code is compiled for AVX-512: add it below (the test above fails).
#ifndef TEDDY_VARIANT_NS
#error "isa_variant.h is for the generated kernel variant sources (CMakeLists.txt defines TEDDY_VARIANT_NS)"
#endif

#pragma GCC target("no-avx512f,no-avx512bw,no-avx512dq,no-avx512vl,no-avx512cd")
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/dropout_mask.h"
#include "teddy/kernels/linear16_widen.h"
#include "teddy/kernels/quant_weight.h"
#include "teddy/kernels/ref/attention.h"
#include "teddy/kernels/ref/crossentropy.h"
// Back to the command line's x86-64-v4 (CMakeLists.txt). Not push/pop_options: after
// pop_options GCC 12 no longer inlined vec_math.h's helpers into the `omp simd` loops
// of this file (gelu_forward called sigmoid_approx per element: 15x slower).
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,prefer-vector-width=512")
// The op declarations under the same target as their definitions below: a function
// declared under one target and defined under another is, to GCC, two versions of it
// (function multiversioning), and the plain symbol is never defined.
#include "teddy/kernels/kernels.h"

#define cpu TEDDY_VARIANT_NS
