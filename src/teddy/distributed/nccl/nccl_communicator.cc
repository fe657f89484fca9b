// Compiled only with TEDDY_NCCL (see nccl_communicator.h). The .cc suffix keeps it
// out of teddy_dist's *.cpp glob, which builds without CUDA.
#include "teddy/distributed/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "teddy/core/error.h"

namespace teddy::dist {

namespace {

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw Error(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(rc));
}
void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw Error(std::string("CUDA ") + what + " failed: " + cudaGetErrorString(rc));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int device) : rank_(bootstrap.rank()), size_(bootstrap.size()) {
    check_cuda(cudaSetDevice(device), "SetDevice");
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "GetUniqueId");
    bootstrap.broadcast(&id, sizeof id, 0);
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "CommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "StreamCreate");
  }
  ~NcclCommunicator() override {
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* d, size_t n) override { ar(d, n, ncclFloat32, 4); }
  void all_reduce_sum(double* d, size_t n) override { ar(d, n, ncclFloat64, 8); }
  void all_reduce_sum(int64_t* d, size_t n) override { ar(d, n, ncclInt64, 8); }

  void reduce_scatter_sum(float* data, std::span<const size_t> counts) override {
    Timed t(this);
    enqueue_reduce_scatter(data, counts);
  }
  // NCCL collectives are asynchronous on the stream already: starting one is
  // enqueueing it; completion is the stream draining (one stream, in order).
  CommRequest start_all_reduce_sum(float* d, size_t n) override {
    Queued q(this);
    check_nccl(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm_, stream_), "AllReduce");
    account(n, 4, 2);
    return ++next_id_;
  }
  CommRequest start_reduce_scatter_sum(float* data, std::span<const size_t> counts) override {
    Queued q(this);
    enqueue_reduce_scatter(data, counts);
    return ++next_id_;
  }
  bool test(CommRequest) override {
    const cudaError_t rc = cudaStreamQuery(stream_);
    if (rc == cudaErrorNotReady) return false;
    check_cuda(rc, "StreamQuery");
    return true;
  }
  void wait(CommRequest) override {
    const auto t0 = std::chrono::steady_clock::now();
    check_cuda(cudaStreamSynchronize(stream_), "StreamSynchronize");
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  void enqueue_reduce_scatter(float* data, std::span<const size_t> counts) {
    // NCCL's reduce-scatter needs equal pieces: reduce each rank's piece to it
    // (ncclReduce) inside one group, which handles unequal ZeRO shard tails.
    size_t off = 0, total = 0;
    check_nccl(ncclGroupStart(), "GroupStart");
    for (int r = 0; r < size_; ++r) {
      const size_t c = counts[static_cast<size_t>(r)];
      if (c) check_nccl(ncclReduce(data + off, data + off, c, ncclFloat32, ncclSum, r, comm_, stream_), "Reduce");
      off += c;
    }
    check_nccl(ncclGroupEnd(), "GroupEnd");
    total = off;
    account(total, 4, 1);
  }
  void all_gather(float* data, std::span<const size_t> counts) override {
    Timed t(this);
    size_t off = 0;
    check_nccl(ncclGroupStart(), "GroupStart");
    for (int r = 0; r < size_; ++r) {
      const size_t c = counts[static_cast<size_t>(r)];
      if (c) check_nccl(ncclBroadcast(data + off, data + off, c, ncclFloat32, r, comm_, stream_), "Broadcast");
      off += c;
    }
    check_nccl(ncclGroupEnd(), "GroupEnd");
    account(off, 4, 1);
  }
  void broadcast(void* data, size_t bytes, int root) override {
    Timed t(this);
    check_nccl(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_), "Broadcast");
    if (rank_ == root) {
      stats_.bytes_sent += bytes;
      stats_.payload_bytes += bytes;
    }
  }
  void send(const void* data, size_t bytes, int to, int) override {
    Timed t(this);
    check_nccl(ncclSend(data, bytes, ncclUint8, to, comm_, stream_), "Send");
    stats_.bytes_sent += bytes;
    stats_.payload_bytes += bytes;
  }
  void recv(void* data, size_t bytes, int from, int) override {
    Timed t(this);
    check_nccl(ncclRecv(data, bytes, ncclUint8, from, comm_, stream_), "Recv");
  }
  void barrier() override {
    // An all-reduce of one device int is NCCL's barrier.
    int* d = nullptr;
    check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&d), sizeof(int), stream_), "MallocAsync");
    ar(d, 1, ncclInt32, 4);
    check_cuda(cudaFreeAsync(d, stream_), "FreeAsync");
  }
  [[noreturn]] void abort(int code, const std::string&) override {
    ncclCommAbort(comm_);
    std::_Exit(code);
  }

 private:
  int rank_, size_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  CommRequest next_id_ = 0;

  // Accounts an enqueue-only call (the time to enqueue; waiting is counted by wait()).
  struct Queued {
    explicit Queued(NcclCommunicator* c) : c_(c), t0_(std::chrono::steady_clock::now()) { ++c_->stats_.calls; }
    ~Queued() { c_->stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
    NcclCommunicator* c_;
    std::chrono::steady_clock::time_point t0_;
  };
  void account(size_t n, size_t elem, int passes) {
    stats_.payload_bytes += static_cast<uint64_t>(n) * elem;
    stats_.bytes_sent += static_cast<uint64_t>(passes) * ring(n, elem);
  }

  // Synchronises the stream at scope exit (blocking contract) and accounts the time.
  struct Timed {
    explicit Timed(NcclCommunicator* c) : c_(c), t0_(std::chrono::steady_clock::now()) { ++c_->stats_.calls; }
    ~Timed() noexcept(false) {
      check_cuda(cudaStreamSynchronize(c_->stream_), "StreamSynchronize");
      c_->stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    }
    NcclCommunicator* c_;
    std::chrono::steady_clock::time_point t0_;
  };
  void ar(void* d, size_t n, ncclDataType_t type, size_t elem) {
    Timed t(this);
    check_nccl(ncclAllReduce(d, d, n, type, ncclSum, comm_, stream_), "AllReduce");
    account(n, elem, 2);
  }
  uint64_t ring(size_t n, size_t elem) const {
    return static_cast<uint64_t>(n) * elem * static_cast<uint64_t>(size_ - 1) / static_cast<uint64_t>(size_);
  }
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  return std::make_unique<NcclCommunicator>(bootstrap, device);
}

}  // namespace teddy::dist
