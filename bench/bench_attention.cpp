// Causal attention forward + backward, FlashAttention vs the plain T x T kernel,
// at GPT-2 small head shapes (B=1, 12 heads, head dim 64), T = 256 and 1024.
// FLOP/s use the causal model count (attention_flops), the same for both.
//   ./bench_attention [--benchmark_filter=flash]
// Threads: OMP_NUM_THREADS (OpenBLAS follows OpenMP's setting). `teddy bench
// attention` covers longer sequences and counts memory.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bench/attention_bench.h"
#include "teddy/core/buffer.h"
#include "teddy/kernels/baseline/attention_plain.h"
#include "teddy/kernels/cpu/attention.h"

namespace {

namespace kc = teddy::kernels::cpu;
namespace bl = teddy::kernels::baseline;
using teddy::AlignedBuffer;

constexpr int kB = 1, kNH = 12, kHS = 64;

struct Buffers {
  AlignedBuffer qkv, out, lse, dout, dqkv, work, work2;
  explicit Buffers(int T) {
    const size_t rows = static_cast<size_t>(kB) * T;
    qkv.resize(rows * 3 * kNH * kHS * sizeof(float));
    out.resize(rows * kNH * kHS * sizeof(float));
    lse.resize(rows * kNH * sizeof(float));
    dout.resize(out.bytes());
    dqkv.resize(qkv.bytes());
    fill(qkv.as<float>(), qkv.bytes() / sizeof(float), 1);
    fill(dout.as<float>(), dout.bytes() / sizeof(float), 2);
  }
  static void fill(float* p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t h = (static_cast<uint32_t>(i) ^ (seed * 2654435761u)) * 2246822519u;
      p[i] = static_cast<float>((h >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
  }
};

void set_counters(benchmark::State& state, int T) {
  state.counters["FLOP/s"] = benchmark::Counter(teddy::attention_flops(kB, T, kNH, kHS),
                                                benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_attention_flash(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  Buffers b(T);
  const size_t n = std::max(kc::attention_flash_forward_scratch_floats(kB, T, kNH, kNH, kHS),
                            kc::attention_flash_backward_scratch_floats(kB, T, kNH, kNH, kHS));
  b.work.resize(n * sizeof(float));
  for (auto _ : state) {
    kc::attention_flash_forward(b.out.as<float>(), b.lse.as<float>(), b.qkv.as<float>(), nullptr, kB, T, kNH, kNH,
                                kHS, b.work.as<float>(), n);
    kc::attention_flash_backward(b.dqkv.as<float>(), b.dout.as<float>(), b.qkv.as<float>(), b.out.as<float>(),
                                 b.lse.as<float>(), nullptr, kB, T, kNH, kNH, kHS, b.work.as<float>(), n);
    benchmark::DoNotOptimize(b.dqkv.data());
  }
  set_counters(state, T);
}

void BM_attention_plain(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  Buffers b(T);
  b.work.resize(static_cast<size_t>(kB) * kNH * T * T * sizeof(float));  // P, kept for backward
  b.work2.resize(static_cast<size_t>(T) * T * sizeof(float));             // dP / dS of one head
  for (auto _ : state) {
    bl::attention_plain_forward(b.out.as<float>(), b.lse.as<float>(), b.work.as<float>(), b.qkv.as<float>(),
                                nullptr, kB, T, kNH, kNH, kHS);
    bl::attention_plain_backward(b.dqkv.as<float>(), b.work2.as<float>(), b.dout.as<float>(), b.qkv.as<float>(),
                                 b.work.as<float>(), kB, T, kNH, kNH, kHS);
    benchmark::DoNotOptimize(b.dqkv.data());
  }
  set_counters(state, T);
}

BENCHMARK(BM_attention_flash)->ArgName("T")->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_attention_plain)->ArgName("T")->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
