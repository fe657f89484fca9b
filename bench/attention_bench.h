#pragma once
// `teddy bench attention`: a backend's attention ops ("flash": the cpu backend's
// FlashAttention, in the workspace its queries ask for) vs the plain T x T kernel on the
// CPU (kernels/baseline), forward + backward, causal. Time is the median of `reps` runs after `warmup`.
// Memory is counted, not derived: every buffer the benchmark allocates for a run
// (qkv, out, lse, dout, dqkv, plus the flash scratch or the plain kernel's
// probability matrix and its backward scratch) goes through one counter, and
// peak_bytes is the most it held at once.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace teddy {

struct AttentionBenchOptions {
  std::vector<int> seqs = {256, 1024, 4096, 16384};
  std::vector<std::string> impls = {"flash", "plain"};
  int batch = 1;
  int heads = 12;
  int kv_heads = 0;  // 0: same as heads
  int head_dim = 64;
  int warmup = 1;
  int reps = 5;
  int threads = 0;   // 0: leave OpenMP's setting
  std::string backend = "cpu";  // whose attention ops the "flash" runs time (kernels::backend)
  size_t plain_max_bytes = size_t{8} << 30;  // skip plain runs that would allocate more
  uint64_t seed = 1;
};

struct AttentionBenchResult {
  std::string impl;  // "flash" or "plain"
  int seq = 0, batch = 0, heads = 0, kv_heads = 0, head_dim = 0, threads = 0, reps = 0;
  bool skipped = false;
  size_t needed_bytes = 0;  // what a skipped run would have allocated
  double ms_fwd = 0, ms_bwd = 0, ms_fwd_bwd = 0;  // medians (fwd_bwd: median of the sums)
  size_t peak_bytes = 0;
  double gflops = 0;  // causal attention model FLOPs / ms_fwd_bwd (see attention_flops)
};

// Model FLOPs of causal attention forward + backward, as FlashAttention-2 counts them:
// forward 4*B*NH*T^2*HS / 2 (two matmuls, half the square), backward 2.5x forward.
// The plain kernel computes the full square, but both are credited the same work.
double attention_flops(int B, int T, int NH, int HS);

// Bytes the plain kernel's run allocates: inputs/outputs/grads + att (B,NH,T,T) + datt (T,T).
size_t attention_plain_bytes(int B, int T, int NH, int NKV, int HS);

// Validates opts (throws ConfigError), then runs impl x seq in order, calling
// on_result (if set) as each finishes.
std::vector<AttentionBenchResult> run_attention_bench(
    const AttentionBenchOptions& opts, const std::function<void(const AttentionBenchResult&)>& on_result = {});

}  // namespace teddy
