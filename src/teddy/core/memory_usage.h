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

// "1.5 MiB": a byte count in binary units, one decimal above bytes.
std::string human_bytes(double bytes);

}  // namespace teddy
