#pragma once
// Collective and point-to-point communication between the ranks of one job. MPI
// carries everything on CPUs; NCCL implements the same interface on GPUs. Counts
// are in elements; every call is blocking and must be entered by all ranks of the
// communicator in the same order (the MPI/NCCL rule).
//
// Traffic accounting: each call adds the bytes this rank sends under the ring
// algorithm (what NCCL and large-message MPI use): reduce-scatter and all-gather of
// n elements send (W-1)/W * n, all-reduce twice that (it is reduce-scatter followed
// by all-gather), broadcast n (root) or 0, send n. These are the figures ZeRO's
// 2Ψ / 3Ψ communication volumes are stated in.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace teddy::dist {

struct CommStats {
  uint64_t bytes_sent = 0;   // ring-algorithm bytes this rank sent
  uint64_t calls = 0;
  double seconds = 0;        // wall time inside communication calls
};

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
