#include "teddy/io/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>

#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

std::recursive_mutex g_mutex;  // recursive: a RunLock destroyed while acquire() unwinds takes it again
std::map<std::string, std::weak_ptr<RunLock>> g_held;  // this process's locks, by canonical run dir

std::string holder_text(int fd) {
  char buf[512] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "another process (it has not written its name yet)" : s;
}

}  // namespace

std::shared_ptr<RunLock> RunLock::acquire(const std::string& run_dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw Error(run_dir + ": cannot create run directory: " + ec.message());
  const std::string key = fs::weakly_canonical(run_dir, ec).string();
  std::lock_guard<std::recursive_mutex> guard(g_mutex);
  // Shared inside this process only: a forked child inherits the map, not the right
  // to the lock (flock belongs to the parent's open file).
  if (auto it = g_held.find(key); it != g_held.end())
    if (auto held = it->second.lock(); held && held->pid_ == ::getpid()) return held;

  std::shared_ptr<RunLock> lock(new RunLock());
  lock->key_ = key;
  lock->pid_ = ::getpid();
  lock->path_ = (fs::path(run_dir) / ".lock").string();
  lock->fd_ = ::open(lock->path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock->fd_ < 0) throw Error(lock->path_ + ": cannot open the run's lock file: " + std::strerror(errno));
  if (::flock(lock->fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e == EWOULDBLOCK) {
      const std::string who = holder_text(lock->fd_);
      throw Error(run_dir + " is in use: locked by " + who + " (" + lock->path_ +
                  "); one run writes a run directory at a time: wait for it, stop it, or set another run.dir");
    }
    if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) {
      lock->note_ = "# " + lock->path_ + ": the filesystem does not support locks (" + std::strerror(e) +
                    "): a second run on this directory would not be refused\n";
    } else {
      throw Error(lock->path_ + ": cannot lock: " + std::strerror(e));
    }
  }
  if (lock->note_.empty()) {
    // Who holds it, for the message a second writer prints.
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    char when[64] = {};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    const std::string who = "teddy pid " + std::to_string(::getpid()) + " on " + host + " since " + when + "\n";
    if (::ftruncate(lock->fd_, 0) != 0 || ::pwrite(lock->fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size()))
      lock->note_ = "# " + lock->path_ + ": locked, but the holder's name could not be written: " + std::strerror(errno) + "\n";
  }
  g_held[key] = lock;
  return lock;
}

RunLock::~RunLock() {
  std::lock_guard<std::recursive_mutex> guard(g_mutex);
  if (auto it = g_held.find(key_); it != g_held.end() && it->second.expired()) g_held.erase(it);
  if (fd_ >= 0) ::close(fd_);  // drops the flock
}

}  // namespace teddy
