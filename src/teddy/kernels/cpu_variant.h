#pragma once
// The variants of the cpu backend's hand-written kernels (kernels/cpu/) in this binary,
// and the one this process runs. The portable build (TEDDY_NATIVE=OFF, the default)
// compiles them for x86-64-v3 (AVX2) and x86-64-v4 (AVX-512) and picks, once at first
// use, the highest the CPU supports (core/cpu_info.h: CPUID), capped by the environment
// variable TEDDY_CPU_ISA=avx2|avx512; a -march=native build has one variant, "native".
// OpenBLAS and oneDNN dispatch on their own (OPENBLAS_CORETYPE, ONEDNN_MAX_CPU_ISA).
#include <span>
#include <string_view>

#include "teddy/kernels/backend.h"

namespace teddy::kernels {

struct CpuVariant {
  std::string_view isa;  // "avx2", "avx512" or "native"
  const Backend* table;  // that variant's ops (named "cpu")
};

// The variants compiled into this binary, lowest first: {"avx2", "avx512"} or {"native"}.
std::span<const std::string_view> compiled_cpu_variants();
// The variants compiled in that this CPU can run, lowest ISA first.
std::span<const CpuVariant> cpu_variants();
// The one kernels::backend("cpu") is (and onednn's tables build on). Throws
// ConfigError for a bad TEDDY_CPU_ISA, or a cap the build cannot honour (a native build).
const CpuVariant& cpu_variant();

}  // namespace teddy::kernels
