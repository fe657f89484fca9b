#include "teddy/core/memory_usage.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
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

namespace {

constexpr double kNone = std::numeric_limits<double>::infinity();

// One number from a file ("max" or unreadable: none).
double read_number(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return kNone;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && v >= 0 ? v : kNone;
}

// "Key:   123 kB" from a /proc file, in bytes.
double proc_kb(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream is(line.substr(key.size() + 1));
    double kb = 0;
    if (is >> kb) return kb * 1024.0;
  }
  return kNone;
}

// The cgroup's limit less its usage, v2 or v1 (a limit near 2^63 is "none").
double cgroup_room(std::string& which) {
  std::ifstream in("/proc/self/cgroup");
  std::string v2, v1;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) v2 = line.substr(3);
    const size_t m = line.find(":memory:");
    if (m != std::string::npos) v1 = line.substr(m + 8);
  }
  auto room = [](double limit, double usage) {
    if (!std::isfinite(limit) || limit >= 4.0e18) return kNone;
    return std::isfinite(usage) ? std::max(0.0, limit - usage) : limit;
  };
  // Inside a container the process's own cgroup is usually mounted at the root.
  for (const std::string& base : {"/sys/fs/cgroup" + v2, std::string("/sys/fs/cgroup")}) {
    const double r = room(read_number(base + "/memory.max"), read_number(base + "/memory.current"));
    if (std::isfinite(r)) return which = "cgroup memory.max less memory.current", r;
  }
  for (const std::string& base : {"/sys/fs/cgroup/memory" + v1, std::string("/sys/fs/cgroup/memory")}) {
    const double r = room(read_number(base + "/memory.limit_in_bytes"), read_number(base + "/memory.usage_in_bytes"));
    if (std::isfinite(r)) return which = "cgroup memory.limit_in_bytes less usage", r;
  }
  return kNone;
}


}  // namespace

MemoryBudget available_memory() {
  MemoryBudget b{kNone, ""};
  auto take = [&](double v, const std::string& what) {
    if (v < b.bytes) b = {v, what};
  };
  take(proc_kb("/proc/meminfo", "MemAvailable"), "MemAvailable (/proc/meminfo)");
  std::string which;
  const double cg = cgroup_room(which);
  take(cg, which);
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const double used = proc_kb("/proc/self/status", "VmSize");
    take(static_cast<double>(rl.rlim_cur) - (std::isfinite(used) ? used : 0.0), "ulimit -v (RLIMIT_AS) less the address space in use");
  }
  return b;
}


}  // namespace teddy
