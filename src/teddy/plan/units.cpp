#include "teddy/plan/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"

namespace teddy::plan {
namespace {

[[noreturn]] void fail(std::string_view flag, std::string_view rule, std::string_view text) {
  throw ConfigError(std::string(flag) + ": " + std::string(rule) + " (got '" + std::string(text) + "')");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "1.5TB" into 1.5 and "tb"; fails if the number part does not parse.
double leading_number(std::string_view flag, std::string_view text, std::string& suffix) {
  std::string s(text);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  s = s.substr(start);
  if (s.empty()) fail(flag, "expected a number", text);
  const char* begin = s.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin) fail(flag, "expected a number", text);
  suffix = lower(std::string_view(end));
  while (!suffix.empty() && suffix.front() == ' ') suffix.erase(suffix.begin());
  return v;
}

}  // namespace

void check_range(std::string_view flag, double value, double max, bool allow_zero) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", value);
  if (!std::isfinite(value)) fail(flag, "must be a finite number", buf);
  if (allow_zero ? value < 0 : value <= 0) fail(flag, allow_zero ? "must be >= 0" : "must be > 0", buf);
  if (value > max) {
    char rule[96];
    std::snprintf(rule, sizeof rule, "must be at most %.10g", max);
    fail(flag, rule, buf);
  }
}

double parse_count(std::string_view flag, std::string_view text, double max) {
  std::string suffix;
  double v = leading_number(flag, text, suffix);
  if (suffix.empty()) {
  } else if (suffix == "k") {
    v *= 1e3;
  } else if (suffix == "m") {
    v *= 1e6;
  } else if (suffix == "b" || suffix == "g") {
    v *= 1e9;
  } else if (suffix == "t") {
    v *= 1e12;
  } else if (suffix == "p") {
    v *= 1e15;
  } else {
    fail(flag, "unknown suffix (use K, M, B, T, P or a plain number like 2e21)", text);
  }
  if (!std::isfinite(v)) fail(flag, "must be a finite number", text);
  if (v <= 0) fail(flag, "must be > 0", text);
  if (v > max) {
    char rule[96];
    std::snprintf(rule, sizeof rule, "must be at most %.10g", max);
    fail(flag, rule, text);
  }
  return v;
}

double parse_bytes(std::string_view flag, std::string_view text, double max) {
  std::string suffix;
  double v = leading_number(flag, text, suffix);
  struct Unit { const char* name; double scale; };
  static constexpr Unit units[] = {
      {"", 1},          {"b", 1},
      {"k", 1e3},       {"kb", 1e3},   {"kib", 1024.0},
      {"m", 1e6},       {"mb", 1e6},   {"mib", 1048576.0},
      {"g", 1e9},       {"gb", 1e9},   {"gib", 1073741824.0},
      {"t", 1e12},      {"tb", 1e12},  {"tib", 1099511627776.0},
  };
  bool found = false;
  for (const Unit& u : units) {
    if (suffix == u.name) {
      v *= u.scale;
      found = true;
      break;
    }
  }
  if (!found) fail(flag, "unknown size unit (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)", text);
  if (!std::isfinite(v)) fail(flag, "must be a finite size", text);
  if (v <= 0) fail(flag, "must be > 0", text);
  if (v > max) {
    char rule[96];
    std::snprintf(rule, sizeof rule, "must be at most %.10g bytes", max);
    fail(flag, rule, text);
  }
  return v;
}

std::string format_count(double n) {
  struct Step { double scale; const char* suffix; };
  static constexpr Step steps[] = {{1e15, "P"}, {1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  char buf[64];
  for (const Step& s : steps) {
    if (std::fabs(n) >= s.scale) {
      const double v = n / s.scale;
      std::snprintf(buf, sizeof buf, v >= 100 ? "%.1f%s" : "%.2f%s", v, s.suffix);
      return buf;
    }
  }
  std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

std::string format_flops(double flops) {
  struct Step { double scale; const char* prefix; };
  static constexpr Step steps[] = {{1e18, "E"}, {1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}};
  char buf[64];
  for (const Step& s : steps) {
    if (std::fabs(flops) >= s.scale) {
      std::snprintf(buf, sizeof buf, "%.2f %sFLOP", flops / s.scale, s.prefix);
      return buf;
    }
  }
  std::snprintf(buf, sizeof buf, "%.0f FLOP", flops);
  return buf;
}

std::string format_sci(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2e", x);
  return buf;
}

std::string format_bytes(double bytes) { return teddy::format_bytes(bytes, ByteUnits::decimal); }

std::string format_duration(double seconds) {
  char buf[64];
  if (seconds < 120) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else if (seconds < 2 * 3600) {
    std::snprintf(buf, sizeof buf, "%.1f min", seconds / 60);
  } else if (seconds < 2 * 86400) {
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  } else if (seconds < 2 * 365.25 * 86400) {
    std::snprintf(buf, sizeof buf, "%.1f days", seconds / 86400);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f years", seconds / (365.25 * 86400));
  }
  return buf;
}

}  // namespace teddy::plan
