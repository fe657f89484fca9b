#pragma once
// Collective and point-to-point communication between the ranks of one job. MPI
// carries everything on CPUs; NCCL implements the same interface on GPUs. Counts
// are in elements; collectives must be entered by all ranks of the communicator in
// the same order (the MPI/NCCL rule). The plain calls block; the start_* forms
// return at once with a request to test or wait for (overlap with compute).
//
// Traffic accounting, two figures per call:
//   payload_bytes  measured: the bytes of the buffer the call works on, as handed
//                  in (all-reduce, reduce-scatter, all-gather: the whole n elements;
//                  broadcast: n at the root; send: n).
//   bytes_sent     modelled: the bytes this rank puts on the wire under the ring
//                  algorithm (what NCCL and large-message MPI use): reduce-scatter
//                  and all-gather of n elements send (W-1)/W * n, all-reduce twice
//                  that (reduce-scatter then all-gather), broadcast n (root) or 0,
//                  send n. ZeRO's 2Ψ / 3Ψ volumes are stated in these terms.
//                  MPI picks its own algorithm per message size, so the real wire
//                  bytes may differ.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace teddy::dist {

struct CommStats {
  uint64_t bytes_sent = 0;     // modelled: ring-algorithm bytes this rank sent
  uint64_t payload_bytes = 0;  // measured: buffer bytes handed to the calls
  uint64_t calls = 0;
  double seconds = 0;          // wall time inside communication calls (blocked or progressing)
};

// A started (non-blocking) collective; 0 is never a live request.
using CommRequest = uint64_t;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In-place sums over all ranks.
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* data, size_t n) = 0;
  // `data` spans sum(counts) floats laid out rank by rank (counts.size() == size()).
  // On return this rank's own piece (at offset sum(counts[0..rank))) holds the sum
  // over ranks; the other pieces are unspecified. Counts may differ (even be 0).
  virtual void reduce_scatter_sum(float* data, std::span<const size_t> counts) = 0;
  // `data` as above: each rank's own piece is copied to every rank.
  virtual void all_gather(float* data, std::span<const size_t> counts) = 0;
  // Non-blocking forms: start the collective and return. The buffer belongs to the
  // communicator until the request completes (test() true, or wait()). Started and
  // blocking collectives together keep the same order on every rank. The defaults
  // run the blocking call (a communicator without asynchronous collectives).
  virtual CommRequest start_all_reduce_sum(float* data, size_t n) {
    all_reduce_sum(data, n);
    return 0;
  }
  virtual CommRequest start_reduce_scatter_sum(float* data, std::span<const size_t> counts) {
    reduce_scatter_sum(data, counts);
    return 0;
  }
  // Advances started collectives (MPI without a progress thread moves them only
  // inside MPI calls) and says whether `req` has completed. Never blocks.
  virtual bool test(CommRequest) { return true; }
  virtual void wait(CommRequest) {}
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void send(const void* data, size_t bytes, int to, int tag) = 0;
  virtual void recv(void* data, size_t bytes, int from, int tag) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job now (a failed rank must not leave the others waiting
  // in a collective). Does not return.
  [[noreturn]] virtual void abort(int code, const std::string& why) = 0;

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  CommStats stats_;
};

// Every rank's `mine` (the same length k on every rank) on every rank: rank r's
// values at [r*k, (r+1)*k). One all-reduce sum over a buffer with one slot per rank:
// exact, since the other ranks add zeros (an int64 bit pattern such as a checksum
// survives). T: float, double or int64_t. Collective: every rank calls it.
template <class T>
std::vector<T> gather_per_rank(Communicator& comm, const std::vector<T>& mine) {
  const size_t k = mine.size();
  std::vector<T> all(k * static_cast<size_t>(comm.size()), T{});
  std::copy(mine.begin(), mine.end(), all.begin() + static_cast<std::ptrdiff_t>(k * static_cast<size_t>(comm.rank())));
  comm.all_reduce_sum(all.data(), all.size());
  return all;
}

// A single-process communicator (world size 1): every collective is a no-op. Lets
// the distributed code paths run, and be tested, without MPI.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_sum(int64_t*, size_t) override {}
  void reduce_scatter_sum(float*, std::span<const size_t>) override {}
  void all_gather(float*, std::span<const size_t>) override {}
  void broadcast(void*, size_t, int) override {}
  void send(const void*, size_t, int, int) override;
  void recv(void*, size_t, int, int) override;
  void barrier() override {}
  [[noreturn]] void abort(int code, const std::string& why) override;
};

}  // namespace teddy::dist
