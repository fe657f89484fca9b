#pragma once
// The watchdog of a communicator: a peer rank that hangs without dying (a deadlock, a
// stopped process, a lost node that the launcher has not noticed) would leave every
// other rank blocked in its next collective forever. The communicator marks each
// communication call in flight (begin / end); a thread checks every poll interval
// and, when one call has waited longer than the timeout ([dist] timeout_s), reports
// it once.
//
// Reporting, not deciding: the library prints nothing here. It calls the HangHandler
// its caller installed, on the watchdog thread (the thread that made the call is
// still blocked inside MPI), with a HungCall: which call, this rank, the world size,
// how long it had waited. The handler decides what the user sees and how the job
// ends: `teddy pretrain` / `teddy sft` print "teddy: error on rank R of W: ..." and
// end every rank with World::abort (train/job.h, cli/job.cpp).
//
// The default, with no handler or a handler that returns: the blocked call cannot be
// unwound, so the communicator ends the job anyway with exit code kHangExitCode (3):
// MpiCommunicator calls MPI_Abort where MPI allows other threads to call it
// (MPI_THREAD_MULTIPLE), else ends this process with std::_Exit and the launcher
// (mpirun, srun) ends the other ranks as for any rank that died. A hung collective
// therefore never blocks a job forever, handler or not.
//
// Watchdog itself has no MPI in it, so the reporting path is tested without a real
// hang (tests/distributed/test_watchdog.cpp).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace teddy::dist {

// The exit code of a job the watchdog ended by default (what `teddy` also uses).
inline constexpr int kHangExitCode = 3;

// A communication call that waited longer than the timeout.
struct HungCall {
  std::string call;      // the MPI call in flight: "Allreduce", "Barrier", "Wait", ...
  int rank = 0;          // this rank (it is the one waiting; the hung peer is another)
  int size = 1;          // ranks in the job
  double waited_s = 0;   // how long the call had been waiting when it was reported
  double timeout_s = 0;  // the limit ([dist] timeout_s)
  // "MPI Allreduce waited more than 5 s (dist.timeout_s); a peer rank is hung or gone"
  std::string message() const;
};

using HangHandler = std::function<void(const HungCall&)>;

class Watchdog {
 public:
  // timeout_s <= 0: no thread, nothing is ever reported (begin/end still cost two
  // atomic stores). end_job runs after the handler returns (the communicator's
  // default end, see above); it should not return, and if it does the watchdog
  // stops watching. poll_s: how often the thread looks (tests use a short one).
  Watchdog(double timeout_s, int rank, int size, HangHandler on_hang, std::function<void()> end_job,
           double poll_s = 0.5);
  ~Watchdog();  // stops and joins the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // A communication call starts / ends on the calling thread. `call` must outlive
  // the call (a string literal). Calls do not nest.
  void begin(const char* call);
  void end();
  bool fired() const { return fired_.load(); }

 private:
  void watch();

  double timeout_s_;
  int rank_, size_;
  HangHandler on_hang_;
  std::function<void()> end_job_;
  double poll_s_;
  std::atomic<int64_t> busy_since_{0};  // steady-clock ns of the call in flight, 0: none
  std::atomic<const char*> busy_what_{""};
  std::atomic<bool> fired_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: started when everything above is set
};

}  // namespace teddy::dist
