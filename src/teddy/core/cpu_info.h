#pragma once
// What this process runs on, for `teddy --version`, benchmark records and test logs:
// the CPU's model name and the vector ISA extensions the code paths care about; and
// which variant of teddy's hand-written kernels it can run (kernels/cpu_variant.h).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

struct CpuInfo {
  std::string model;             // "AMD EPYC 9R45 ..." (/proc/cpuinfo "model name"), or "unknown"
  std::vector<std::string> isa;  // of avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16, the ones present
  int logical_cpus = 0;          // online (std::thread::hardware_concurrency)
};

CpuInfo cpu_info();

// The ISA levels the portable build compiles the hand-written kernels for, lowest
// first: avx2 = x86-64-v3 (AVX2, FMA, F16C: Haswell, Zen 1 and later; the whole
// binary's baseline), avx512 = x86-64-v4 (AVX-512 F/BW/DQ/VL/CD: Skylake-X, Zen 4 and
// later).
enum class KernelIsa { avx2, avx512 };
std::string_view kernel_isa_name(KernelIsa isa);  // "avx2" | "avx512"
// Whether the CPU (CPUID, and the OS's saved register state: XGETBV) runs that level.
bool cpu_supports(KernelIsa isa);
// The cap a user set with the environment variable TEDDY_CPU_ISA (as oneDNN's
// ONEDNN_MAX_CPU_ISA caps oneDNN): nullopt when unset or empty; anything but "avx2" or
// "avx512" throws ConfigError naming the variable.
std::optional<KernelIsa> kernel_isa_cap(const char* env_value);
// The variant to run: the highest of `compiled` (ascending) that the CPU supports and
// the cap allows; avx2 when none (the baseline always runs: the binary needs it).
KernelIsa choose_kernel_isa(const std::vector<KernelIsa>& compiled, bool cpu_has_avx512,
                            std::optional<KernelIsa> cap);

}  // namespace teddy
