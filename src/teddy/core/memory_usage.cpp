#include "teddy/core/memory_usage.h"

#include <fstream>
#include <sstream>
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

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; ++u; }
  std::ostringstream os;
  os.precision(u ? 1 : 0);
  os << std::fixed << b << " " << units[u];
  return os.str();
}

}  // namespace teddy
