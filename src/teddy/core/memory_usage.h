#pragma once
// Process memory figures from /proc (Linux).
#include <cstddef>
#include <string>

namespace teddy {

size_t peak_rss_bytes();     // VmHWM: the process's peak resident set
size_t current_rss_bytes();  // VmRSS
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs) so the next
// peak_rss_bytes() measures one phase. Returns false where the kernel refuses.
bool reset_peak_rss();

// What this process may still allocate: the tightest of MemAvailable
// (/proc/meminfo), the cgroup's limit less its usage (v2 memory.max, v1
// memory.limit_in_bytes) and RLIMIT_AS less the address space in use (ulimit -v).
struct MemoryBudget {
  double bytes = 0;    // +inf when nothing could be read
  std::string source;  // "MemAvailable", "cgroup memory.max", "ulimit -v (RLIMIT_AS)"
};
MemoryBudget available_memory();

// A byte count in the largest unit it reaches (up to tera), below the first step in
// plain bytes ("512 B"). binary: steps of 1024, one decimal ("1.5 MiB"); decimal:
// steps of 1000, two decimals ("80.00 GB", as ZeRO's and vendors' tables use).
enum class ByteUnits { binary, decimal };
std::string format_bytes(double bytes, ByteUnits units);
// "1.5 MiB": format_bytes(bytes, ByteUnits::binary), what run logs print.
std::string human_bytes(double bytes);

}  // namespace teddy
