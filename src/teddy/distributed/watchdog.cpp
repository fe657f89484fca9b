#include "teddy/distributed/watchdog.h"

#include <chrono>
#include <cstdio>

namespace teddy::dist {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string HungCall::message() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "MPI %s waited more than %g s (dist.timeout_s); a peer rank is hung or gone",
                call.c_str(), timeout_s);
  return buf;
}

Watchdog::Watchdog(double timeout_s, int rank, int size, HangHandler on_hang, std::function<void()> end_job,
                   double poll_s)
    : timeout_s_(timeout_s), rank_(rank), size_(size), on_hang_(std::move(on_hang)), end_job_(std::move(end_job)),
      poll_s_(poll_s) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { watch(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::begin(const char* call) {
  busy_what_.store(call);
  busy_since_.store(now_ns());
}

void Watchdog::end() { busy_since_.store(0); }

void Watchdog::watch() {
  const int64_t limit = static_cast<int64_t>(timeout_s_ * 1e9);
  const auto poll = std::chrono::duration<double>(poll_s_);
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, poll, [this] { return stop_; })) {
    const int64_t since = busy_since_.load();
    const int64_t waited = since != 0 ? now_ns() - since : 0;
    if (since == 0 || waited <= limit) continue;
    // The fault path: the thread in the call is blocked inside MPI, only this one can
    // act. Report once, outside the lock (the handler may take its time or end the
    // process), then end the job by default.
    fired_.store(true);
    HungCall h;
    h.call = busy_what_.load();
    h.rank = rank_;
    h.size = size_;
    h.waited_s = static_cast<double>(waited) * 1e-9;
    h.timeout_s = timeout_s_;
    lk.unlock();
    if (on_hang_) on_hang_(h);
    if (end_job_) end_job_();
    return;  // end_job returned (a test's): report no more
  }
}

}  // namespace teddy::dist
