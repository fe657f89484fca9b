#pragma once
// What this process runs on, for `teddy --version`, benchmark records and test logs:
// the CPU's model name and the vector ISA extensions the code paths care about.
#include <string>
#include <vector>

namespace teddy {

struct CpuInfo {
  std::string model;             // "AMD EPYC 9R45 ..." (/proc/cpuinfo "model name"), or "unknown"
  std::vector<std::string> isa;  // of avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16, the ones present
  int logical_cpus = 0;          // online (std::thread::hardware_concurrency)
};

CpuInfo cpu_info();

}  // namespace teddy
