#pragma once
// One writer per run directory: `<run.dir>/.lock`, flock'ed for the life of the run
// by the process that writes the run (rank 0 of a job). The kernel drops the lock
// when that process dies however it dies, so a crash never leaves a stale lock; the
// file stays and only says who held it last ("pid <pid> on <host>, started <time>").
// A second writer is refused naming the holder. Inside one process the lock is
// shared (the job and its Trainer both take it; neither gives it up while the other
// holds it).
//
// Filesystems: local ones and NFS (the kernel maps flock to NFS byte-range locks)
// lock; Lustre does with `-o flock`. Where the filesystem refuses locks (ENOLCK,
// EOPNOTSUPP) the run goes on unlocked and `note()` says so.
#include <memory>
#include <string>

namespace teddy {

class RunLock {
 public:
  // Takes the lock on run_dir (created if missing). Throws Error naming the holder
  // ("<run_dir> is in use: locked by teddy pid 1234 on node7 since ...") when
  // another process holds it, or naming the file when it cannot be opened.
  static std::shared_ptr<RunLock> acquire(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  const std::string& path() const { return path_; }
  // "" when locked; else why the run is not locked ("# ..." line for the start report).
  const std::string& note() const { return note_; }

 private:
  RunLock() = default;
  std::string key_, path_, note_;
  int fd_ = -1;
  int pid_ = 0;  // the process that took it
};

}  // namespace teddy
