#include "teddy/cli/progress.h"

#include <unistd.h>

#include <cmath>

namespace teddy::cli {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

ProgressLine::ProgressLine(FILE* out, int64_t every) : out_(out), tty_(isatty(fileno(out))), every_(every) {}

void ProgressLine::update(int64_t step, int64_t total, const std::string& status) {
  constexpr int kWidth = 20;
  const int filled = total > 0 ? static_cast<int>(kWidth * step / total) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  if (tty_) {
    std::fprintf(out_, "\r\033[K[%s] %lld/%lld %s", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total), status.c_str());
    std::fflush(out_);
    drawn_ = true;
  } else if (step == 1 || step % every_ == 0 || step == total) {
    std::fprintf(out_, "[%s] %lld/%lld %s\n", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total), status.c_str());
    std::fflush(out_);
  }
}

void ProgressLine::message(const std::string& line) {
  if (tty_ && drawn_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  drawn_ = false;
}

void ProgressLine::finish() {
  if (tty_ && drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
}

}  // namespace teddy::cli
