// Picks the cpu backend's kernel variant (cpu_variant.h). CMakeLists.txt defines
// TEDDY_KERNELS_AVX512 when the AVX-512 variant is compiled in (kernels/cpu/isa_variant.h)
// and TEDDY_KERNELS_NATIVE for a -march=native build.
#include "teddy/kernels/cpu_variant.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "teddy/core/cpu_info.h"
#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels {

namespace {

#if defined(TEDDY_KERNELS_NATIVE)
constexpr std::string_view kBaseline = "native";
#else
constexpr std::string_view kBaseline = "avx2";
#endif

#if defined(TEDDY_KERNELS_AVX512)
constexpr std::string_view kCompiled[] = {kBaseline, "avx512"};
#else
constexpr std::string_view kCompiled[] = {kBaseline};
#endif

std::vector<CpuVariant> runnable() {
  std::vector<CpuVariant> v{{kBaseline, &cpu::variant_table()}};
#if defined(TEDDY_KERNELS_AVX512)
  if (cpu_supports(KernelIsa::avx512)) v.push_back({"avx512", &cpu_avx512::variant_table()});
#endif
  return v;
}

}  // namespace

std::span<const std::string_view> compiled_cpu_variants() { return kCompiled; }

std::span<const CpuVariant> cpu_variants() {
  static const std::vector<CpuVariant> all = runnable();
  return all;
}

const CpuVariant& cpu_variant() {
  static const CpuVariant* chosen = [] {
    const std::optional<KernelIsa> cap = kernel_isa_cap(std::getenv("TEDDY_CPU_ISA"));
#if defined(TEDDY_KERNELS_NATIVE)
    if (cap)
      throw ConfigError("TEDDY_CPU_ISA: this build has one kernel variant, compiled with -march=native "
                        "(configure with -DTEDDY_NATIVE=OFF for the dispatched avx2 and avx512 ones)");
    return &cpu_variants()[0];
#else
    std::vector<KernelIsa> compiled{KernelIsa::avx2};
#if defined(TEDDY_KERNELS_AVX512)
    compiled.push_back(KernelIsa::avx512);
#endif
    const KernelIsa isa = choose_kernel_isa(compiled, cpu_supports(KernelIsa::avx512), cap);
    for (const CpuVariant& v : cpu_variants())
      if (v.isa == kernel_isa_name(isa)) return &v;
    return &cpu_variants()[0];
#endif
  }();
  return *chosen;
}

namespace cpu {
const Backend& table() { return *cpu_variant().table; }
}  // namespace cpu

}  // namespace teddy::kernels
