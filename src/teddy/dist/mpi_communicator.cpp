#include "teddy/dist/mpi_communicator.h"

#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "teddy/core/error.h"

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

// Accumulates the wall time of one communication call into stats.
class Timed {
 public:
  explicit Timed(CommStats& s) : s_(s), t0_(std::chrono::steady_clock::now()) { ++s_.calls; }
  ~Timed() { s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  CommStats& s_;
  std::chrono::steady_clock::time_point t0_;
};

// MPI counts are int; ZeRO pieces of large models exceed 2^31 floats, so large
// collectives go in chunks (not needed for the models run here, but cheap to guard).
int to_int(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT32_MAX)) throw Error(std::string("MPI ") + what + ": count " + std::to_string(n) + " exceeds 2^31-1");
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* d, size_t n) override { ar(d, n, MPI_FLOAT, sizeof(float)); }
  void all_reduce_sum(double* d, size_t n) override { ar(d, n, MPI_DOUBLE, sizeof(double)); }
  void all_reduce_sum(int64_t* d, size_t n) override { ar(d, n, MPI_INT64_T, sizeof(int64_t)); }

  void reduce_scatter_sum(float* data, std::span<const size_t> counts) override {
    Timed t(stats_);
    const auto [cnt, off, total] = pieces(counts);
    // In place, MPI leaves the reduced piece at the start of the buffer; move it to
    // this rank's own offset (the other pieces are scratch).
    check(MPI_Reduce_scatter(MPI_IN_PLACE, data, cnt.data(), MPI_FLOAT, MPI_SUM, comm_), "Reduce_scatter");
    if (off[rank_] != 0) std::memmove(data + off[rank_], data, static_cast<size_t>(cnt[rank_]) * sizeof(float));
    stats_.bytes_sent += ring_bytes(total, sizeof(float));
  }

  void all_gather(float* data, std::span<const size_t> counts) override {
    Timed t(stats_);
    const auto [cnt, off, total] = pieces(counts);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, cnt.data(), off.data(), MPI_FLOAT, comm_),
          "Allgatherv");
    stats_.bytes_sent += ring_bytes(total, sizeof(float));
  }

  void broadcast(void* data, size_t bytes, int root) override {
    Timed t(stats_);
    check(MPI_Bcast(data, to_int(bytes, "Bcast"), MPI_BYTE, root, comm_), "Bcast");
    if (rank_ == root) stats_.bytes_sent += bytes;
  }
  void send(const void* data, size_t bytes, int to, int tag) override {
    Timed t(stats_);
    check(MPI_Send(data, to_int(bytes, "Send"), MPI_BYTE, to, tag, comm_), "Send");
    stats_.bytes_sent += bytes;
  }
  void recv(void* data, size_t bytes, int from, int tag) override {
    Timed t(stats_);
    check(MPI_Recv(data, to_int(bytes, "Recv"), MPI_BYTE, from, tag, comm_, MPI_STATUS_IGNORE), "Recv");
  }
  void barrier() override {
    Timed t(stats_);
    check(MPI_Barrier(comm_), "Barrier");
  }
  [[noreturn]] void abort(int code, const std::string&) override {
    // OpenMPI's launcher then kills every other rank and names this one.
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;

  void ar(void* d, size_t n, MPI_Datatype type, size_t elem) {
    Timed t(stats_);
    check(MPI_Allreduce(MPI_IN_PLACE, d, to_int(n, "Allreduce"), type, MPI_SUM, comm_), "Allreduce");
    stats_.bytes_sent += 2 * ring_bytes(n, elem);
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
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Communicator> MpiRuntime::world() const { return std::make_unique<MpiCommunicator>(); }

}  // namespace teddy::dist
