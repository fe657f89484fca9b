#include "teddy/core/cpu_info.h"

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

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

}  // namespace teddy
