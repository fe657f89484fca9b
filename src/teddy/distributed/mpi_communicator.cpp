#include "teddy/distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/distributed/watchdog.h"

namespace teddy::dist {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Marks a communication call as in flight (for the watchdog) and accumulates its
// wall time into stats.
class Timed {
 public:
  // counts: a call of its own (not a test or wait of one already counted).
  Timed(CommStats& s, Watchdog& dog, const char* name, bool counts = true) : s_(s), dog_(dog), t0_(now_ns()) {
    if (counts) ++s_.calls;
    dog_.begin(name);
  }
  ~Timed() {
    dog_.end();
    s_.seconds += static_cast<double>(now_ns() - t0_) * 1e-9;
  }

 private:
  CommStats& s_;
  Watchdog& dog_;
  int64_t t0_;
};

// MPI counts are int; ZeRO pieces of large models exceed 2^31 floats, so large
// collectives go in chunks (not needed for the models run here, but cheap to guard).
int to_int(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT32_MAX)) throw Error(std::string("MPI ") + what + ": count " + std::to_string(n) + " exceeds 2^31-1");
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(double timeout_s, bool progress_thread, bool thread_multiple, HangHandler on_hang)
      : thread_multiple_(thread_multiple) {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // After the handler has reported, the default end (watchdog.h): the call that
    // hangs cannot be unwound.
    dog_ = std::make_unique<Watchdog>(timeout_s, rank_, size_, std::move(on_hang),
                                      [this] { abort(kHangExitCode, "a communication call hung"); });
    if (progress_thread) progress_ = std::thread([this] { progress_loop(); });
  }
  ~MpiCommunicator() override {
    if (progress_.joinable()) {
      {
        std::lock_guard<std::mutex> lk(pmu_);
        progress_stop_ = true;
      }
      pcv_.notify_all();
      progress_.join();
    }
    for (Pending& p : pending_)  // never free a buffer MPI still writes
      if (!p.done) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
    dog_.reset();
    MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* d, size_t n) override { ar(d, n, MPI_FLOAT, sizeof(float)); }
  void all_reduce_sum(double* d, size_t n) override { ar(d, n, MPI_DOUBLE, sizeof(double)); }
  void all_reduce_sum(int64_t* d, size_t n) override { ar(d, n, MPI_INT64_T, sizeof(int64_t)); }

  void reduce_scatter_sum(float* data, std::span<const size_t> counts) override {
    Timed t(stats_, *dog_, "Reduce_scatter");
    const auto [cnt, off, total] = pieces(counts);
    // In place, MPI leaves the reduced piece at the start of the buffer; move it to
    // this rank's own offset (the other pieces are scratch).
    check(MPI_Reduce_scatter(MPI_IN_PLACE, data, cnt.data(), MPI_FLOAT, MPI_SUM, comm_), "Reduce_scatter");
    if (off[rank_] != 0) std::memmove(data + off[rank_], data, static_cast<size_t>(cnt[rank_]) * sizeof(float));
    account(total, sizeof(float), 1);
  }

  CommRequest start_all_reduce_sum(float* d, size_t n) override {
    Timed t(stats_, *dog_, "Iallreduce");
    CommRequest id = 0;
    {
      std::lock_guard<std::mutex> lk(pmu_);
      Pending& p = add_pending();
      id = p.id;
      check(MPI_Iallreduce(MPI_IN_PLACE, d, to_int(n, "Iallreduce"), MPI_FLOAT, MPI_SUM, comm_, &p.req), "Iallreduce");
    }
    pcv_.notify_all();
    account(n, sizeof(float), 2);
    return id;
  }

  CommRequest start_reduce_scatter_sum(float* data, std::span<const size_t> counts) override {
    Timed t(stats_, *dog_, "Ireduce_scatter");
    auto pc = pieces(counts);
    CommRequest id = 0;
    {
      std::lock_guard<std::mutex> lk(pmu_);
      Pending& p = add_pending();
      id = p.id;
      p.cnt = std::move(pc.cnt);  // MPI reads the counts until completion
      p.data = data;
      p.own_off = static_cast<size_t>(pc.off[rank_]);
      check(MPI_Ireduce_scatter(MPI_IN_PLACE, data, p.cnt.data(), MPI_FLOAT, MPI_SUM, comm_, &p.req), "Ireduce_scatter");
    }
    pcv_.notify_all();
    account(pc.total, sizeof(float), 1);
    return id;
  }

  bool test(CommRequest id) override {
    std::unique_lock<std::mutex> lk(pmu_);
    if (pending_.empty()) return true;
    if (!progress_.joinable()) {
      // No progress thread: testing every request, not just `id`, is what moves
      // the others along.
      Timed t(stats_, *dog_, "Test", false);
      for (Pending& p : pending_) test_one(p);
    }
    return take_if_done(id);
  }

  void wait(CommRequest id) override {
    Timed t(stats_, *dog_, "Wait", false);
    std::unique_lock<std::mutex> lk(pmu_);
    const auto it = find(id);
    if (it == pending_.end()) return;
    if (progress_.joinable()) {
      pcv_.wait(lk, [&] { return find(id)->done; });
    } else if (!it->done) {
      check(MPI_Wait(&it->req, MPI_STATUS_IGNORE), "Wait");
      finish(*it);
    }
    take_if_done(id);
  }

  void all_gather(float* data, std::span<const size_t> counts) override {
    Timed t(stats_, *dog_, "Allgatherv");
    const auto [cnt, off, total] = pieces(counts);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, cnt.data(), off.data(), MPI_FLOAT, comm_),
          "Allgatherv");
    account(total, sizeof(float), 1);
  }

  void broadcast(void* data, size_t bytes, int root) override {
    Timed t(stats_, *dog_, "Bcast");
    check(MPI_Bcast(data, to_int(bytes, "Bcast"), MPI_BYTE, root, comm_), "Bcast");
    if (rank_ == root) {
      stats_.bytes_sent += bytes;
      stats_.payload_bytes += bytes;
    }
  }
  void send(const void* data, size_t bytes, int to, int tag) override {
    Timed t(stats_, *dog_, "Send");
    check(MPI_Send(data, to_int(bytes, "Send"), MPI_BYTE, to, tag, comm_), "Send");
    stats_.bytes_sent += bytes;
    stats_.payload_bytes += bytes;
  }
  void recv(void* data, size_t bytes, int from, int tag) override {
    Timed t(stats_, *dog_, "Recv");
    check(MPI_Recv(data, to_int(bytes, "Recv"), MPI_BYTE, from, tag, comm_, MPI_STATUS_IGNORE), "Recv");
  }
  void barrier() override {
    Timed t(stats_, *dog_, "Barrier");
    check(MPI_Barrier(comm_), "Barrier");
  }
  // Safe from any thread: the watchdog's (and a HangHandler's) call comes while the
  // main thread is inside MPI, which only MPI_THREAD_MULTIPLE allows; without it this
  // process just ends and the launcher ends the other ranks as for any rank that died.
  [[noreturn]] void abort(int code, const std::string&) override {
    // OpenMPI's launcher then kills every other rank and names this one.
    if (thread_multiple_ || std::this_thread::get_id() == owner_) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool thread_multiple_ = false;
  std::thread::id owner_ = std::this_thread::get_id();  // the thread that made the communicator
  std::unique_ptr<Watchdog> dog_;  // marks every call in flight; with a timeout, a thread watches them

  void ar(void* d, size_t n, MPI_Datatype type, size_t elem) {
    Timed t(stats_, *dog_, "Allreduce");
    check(MPI_Allreduce(MPI_IN_PLACE, d, to_int(n, "Allreduce"), type, MPI_SUM, comm_), "Allreduce");
    account(n, elem, 2);
  }
  // A collective over n elements: payload n, ring model `passes` x (W-1)/W of n.
  void account(size_t n, size_t elem, int passes) {
    stats_.payload_bytes += static_cast<uint64_t>(n) * elem;
    stats_.bytes_sent += static_cast<uint64_t>(passes) * ring_bytes(n, elem);
  }
  struct Pending {
    CommRequest id = 0;
    MPI_Request req = MPI_REQUEST_NULL;
    std::vector<int> cnt;  // reduce-scatter: the counts MPI reads until completion
    float* data = nullptr;
    size_t own_off = 0;
    bool done = false;
    int rc = MPI_SUCCESS;  // of the test that completed it (the progress thread cannot throw)
  };
  // Started collectives (under pmu_). With a progress thread (MPI_THREAD_MULTIPLE),
  // it alone tests them, so they advance while this thread computes; without one,
  // they advance only when test() or wait() is called.
  std::vector<Pending> pending_;
  CommRequest next_id_ = 1;
  std::thread progress_;
  std::mutex pmu_;
  std::condition_variable pcv_;
  bool progress_stop_ = false;

  Pending& add_pending() {
    pending_.emplace_back();
    pending_.back().id = next_id_++;
    return pending_.back();
  }
  std::vector<Pending>::iterator find(CommRequest id) {
    return std::find_if(pending_.begin(), pending_.end(), [id](const Pending& p) { return p.id == id; });
  }
  void test_one(Pending& p) {
    if (p.done) return;
    int flag = 0;
    p.rc = MPI_Test(&p.req, &flag, MPI_STATUS_IGNORE);
    if (flag || p.rc != MPI_SUCCESS) {
      if (p.rc == MPI_SUCCESS) finish(p);
      p.done = true;
    }
  }
  // True (and forgets it) when `id` has completed or is unknown; throws its error.
  bool take_if_done(CommRequest id) {
    const auto it = find(id);
    if (it == pending_.end()) return true;
    if (!it->done) return false;
    const int rc = it->rc;
    pending_.erase(it);
    check(rc, "Test");
    return true;
  }
  void progress_loop() {
    std::unique_lock<std::mutex> lk(pmu_);
    auto open = [this] {
      return std::any_of(pending_.begin(), pending_.end(), [](const Pending& p) { return !p.done; });
    };
    for (;;) {
      pcv_.wait(lk, [&] { return progress_stop_ || open(); });
      if (progress_stop_) return;
      for (Pending& p : pending_) test_one(p);
      pcv_.notify_all();  // a wait() may be done
      // Let the main thread start and wait; poll again shortly (the transfers
      // themselves advance only inside MPI calls).
      lk.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(20));
      lk.lock();
    }
  }
  // A completed reduce-scatter in place leaves the own piece at the start of the
  // buffer; move it to its offset as the blocking call does.
  void finish(const Pending& p) {
    if (p.data && p.own_off != 0)
      std::memmove(p.data + p.own_off, p.data, static_cast<size_t>(p.cnt[static_cast<size_t>(rank_)]) * sizeof(float));
  }
  uint64_t ring_bytes(size_t n, size_t elem) const {
    return static_cast<uint64_t>(n) * elem * static_cast<uint64_t>(size_ - 1) / static_cast<uint64_t>(size_);
  }
  struct Pieces {
    std::vector<int> cnt, off;
    size_t total;
  };
  Pieces pieces(std::span<const size_t> counts) const {
    if (counts.size() != static_cast<size_t>(size_))
      throw Error("collective: " + std::to_string(counts.size()) + " piece counts for " + std::to_string(size_) + " ranks");
    Pieces p{std::vector<int>(counts.size()), std::vector<int>(counts.size()), 0};
    for (size_t r = 0; r < counts.size(); ++r) {
      p.cnt[r] = to_int(counts[r], "collective");
      p.off[r] = to_int(p.total, "collective offset");
      p.total += counts[r];
    }
    return p;
  }
};

}  // namespace

MpiRuntime::MpiRuntime() {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) throw Error("MpiRuntime: MPI is already initialised (one MpiRuntime per process)");
  int provided = 0;
  // MULTIPLE lets a progress thread test the started collectives while the main
  // thread computes and calls MPI itself; without it they advance in test()/wait().
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "Init_thread");
  thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Communicator> MpiRuntime::world(double timeout_s, bool progress_thread, HangHandler on_hang) const {
  return std::make_unique<MpiCommunicator>(timeout_s, progress_thread && thread_multiple_, thread_multiple_,
                                           std::move(on_hang));
}

}  // namespace teddy::dist
