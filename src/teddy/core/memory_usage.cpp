#include "teddy/core/memory_usage.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

namespace teddy {

static size_t status_field_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k(key);
  while (std::getline(f, line)) {
    if (line.compare(0, k.size(), k) == 0 && line.size() > k.size() && line[k.size()] == ':')
      return std::stoull(line.substr(k.size() + 1));
  }
  return 0;
}

size_t peak_rss_bytes() { return status_field_kb("VmHWM") * 1024; }
size_t current_rss_bytes() { return status_field_kb("VmRSS") * 1024; }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f.flush());
}

std::string format_bytes(double bytes, ByteUnits units) {
  static constexpr const char* kBinary[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  static constexpr const char* kDecimal[] = {"B", "KB", "MB", "GB", "TB"};
  const bool binary = units == ByteUnits::binary;
  const double step = binary ? 1024.0 : 1000.0;
  double scale = 1;  // step^u: exact in a double up to 1e12 and 2^40
  int u = 0;
  while (u < 4 && std::fabs(bytes) >= scale * step) {
    scale *= step;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f %s", u == 0 ? 0 : binary ? 1 : 2, bytes / scale, (binary ? kBinary : kDecimal)[u]);
  return buf;
}

std::string human_bytes(double bytes) { return format_bytes(bytes, ByteUnits::binary); }

}  // namespace teddy
