#include "teddy/core/cpu_info.h"

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "teddy/core/error.h"

namespace teddy {

CpuInfo cpu_info() {
  CpuInfo c;
  c.model = "unknown";
  c.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
  // /proc/cpuinfo lists what the kernel enabled (an emulator or a VM can hide a
  // feature the silicon has: this is what code dispatching at run time sees too).
  std::ifstream in("/proc/cpuinfo");
  std::set<std::string> flags;
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && c.model == "unknown") c.model = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream ss(value);
      for (std::string f; ss >> f;) flags.insert(f);
    }
  }
  for (const char* f : {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_bf16"})
    if (flags.count(f)) c.isa.emplace_back(f);
  return c;
}

std::string_view kernel_isa_name(KernelIsa isa) { return isa == KernelIsa::avx512 ? "avx512" : "avx2"; }

bool cpu_supports(KernelIsa isa) {
  // libgcc's table reads CPUID and checks with XGETBV that the OS saves the ymm/zmm
  // state, so an emulator or a VM that hides AVX-512 reports it absent here too.
  __builtin_cpu_init();
  if (isa == KernelIsa::avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
}

std::optional<KernelIsa> kernel_isa_cap(const char* env_value) {
  if (env_value == nullptr || *env_value == '\0') return std::nullopt;
  const std::string_view v(env_value);
  if (v == "avx2") return KernelIsa::avx2;
  if (v == "avx512") return KernelIsa::avx512;
  throw ConfigError("TEDDY_CPU_ISA: unknown '" + std::string(v) + "' (expected \"avx2\" or \"avx512\")");
}

KernelIsa choose_kernel_isa(const std::vector<KernelIsa>& compiled, bool cpu_has_avx512,
                            std::optional<KernelIsa> cap) {
  KernelIsa best = KernelIsa::avx2;
  for (KernelIsa isa : compiled) {
    if (isa == KernelIsa::avx512 && !cpu_has_avx512) continue;
    if (cap && static_cast<int>(isa) > static_cast<int>(*cap)) continue;
    if (static_cast<int>(isa) > static_cast<int>(best)) best = isa;
  }
  return best;
}

}  // namespace teddy
