#pragma once
// Per-kernel wall-clock accounting for "where the time goes" reports. A Profiler
// is owned by the caller (bench) and handed to the model; with none set, a
// ProfileScope costs one branch.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace teddy {

class Profiler {
 public:
  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
    double flops = 0;  // matrix-product FLOPs attributed to this entry (0 if not a GEMM)
  };
  void add(const char* name, double seconds, double flops) {
    Entry& e = entries_[name];
    e.seconds += seconds;
    e.calls += 1;
    e.flops += flops;
  }
  void clear() { entries_.clear(); }
  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

class ProfileScope {
 public:
  ProfileScope(Profiler* p, const char* name, double flops = 0)
      : p_(p), name_(name), flops_(flops) {
    if (p_) t0_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (p_) p_->add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(), flops_);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  Profiler* p_;
  const char* name_;
  double flops_;
  std::chrono::steady_clock::time_point t0_{};
};

}  // namespace teddy
