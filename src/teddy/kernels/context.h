#pragma once
// The run context: what the library's kernel calls need besides their operands. A
// Model is built with one (default: the cpu backend), and the optimizer, clipping and
// the distributed engine use the model's, so one value decides where a whole run's
// kernels go:
//
//   Context ctx{.backend = &kernels::backend("ref")};
//   Model model(cfg, ctx);                             // forward / backward through ref
//   AdamW opt(model.layout(), AdamWConfig{}, model.context());
//
// A Context is a small value, copied by whoever keeps one; nothing in it is global.
// What it deliberately does not hold: scratch. The model plans its workspace (the
// attention ops' *_workspace queries) inside its activation arena, where the memory
// planner counts it; a shared scratch here would hide that memory from the plan.
#include "teddy/kernels/backend.h"

namespace teddy {

struct Context {
  // The op table every kernel call goes through (never null).
  const kernels::Backend* backend = &kernels::default_backend();
  // OpenMP threads for the kernels. 0: the calling thread's OpenMP setting (what the
  // trainers set once at start with omp_set_num_threads); n > 0: Model, KvDecoder,
  // AdamW, ShardedAdamW and grad_norm run their kernels with n threads (ThreadScope).
  int threads = 0;
  // A device backend's queue (a cudaStream_t for CUDA); ref and cpu ignore it. Not yet
  // passed to the ops: the CUDA backend will add it to the table's signatures.
  void* stream = nullptr;

  const kernels::Backend& ops() const { return *backend; }
};

// Sets the calling thread's OpenMP thread count to ctx.threads for its lifetime and
// restores the previous count after (nothing at all when ctx.threads is 0 or already
// the count). OpenBLAS's OpenMP build follows the same setting.
class ThreadScope {
 public:
  explicit ThreadScope(const Context& ctx);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int prev_ = 0;  // 0: nothing to restore
};

}  // namespace teddy
