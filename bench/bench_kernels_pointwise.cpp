// Memory-bound kernels at GPT-2 124M / LLaMA-style shapes (N = B*T = 1024 rows,
// C = 768, hidden H = 3072, 12 heads of 64): cpu forward + backward of layernorm,
// rmsnorm, gelu, swiglu and rope. Reports bytes/s counting each array read or
// written once per pass (read-modify-write gradients count twice), so the figure
// compares directly with the machine's memory bandwidth.
//   ./bench_kernels_pointwise [--benchmark_filter=gelu]
// Threads: OMP_NUM_THREADS.
#include "teddy/model/rope_freqs.h"
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/kernels/kernels.h"

namespace {

namespace kc = teddy::kernels::cpu;
using teddy::AlignedBuffer;

constexpr int kRows = 1024, kChannels = 768, kHidden = 3072, kHeads = 12, kHeadSize = 64;

// Deterministic values in [-scale, scale) plus offset.
float* filled(AlignedBuffer& buf, size_t n, uint32_t seed, float scale = 1.0f, float offset = 0.0f) {
  buf.resize(n * sizeof(float));
  float* p = buf.as<float>();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t h = (static_cast<uint32_t>(i) ^ (seed * 2654435761u)) * 2246822519u;
    p[i] = offset + scale * (static_cast<float>((h >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
  return p;
}

void set_bytes(benchmark::State& state, int64_t floats_per_iter) {
  state.SetBytesProcessed(state.iterations() * floats_per_iter * static_cast<int64_t>(sizeof(float)));
}

void bm_layernorm(benchmark::State& state) {
  const int N = kRows, C = kChannels;
  AlignedBuffer b_inp, b_w, b_b, b_out, b_mean, b_rstd, b_dout, b_dinp, b_dw, b_db;
  const float* inp = filled(b_inp, size_t(N) * C, 1);
  const float* w = filled(b_w, C, 2, 0.1f, 1.0f);
  const float* bias = filled(b_b, C, 3, 0.1f);
  float* out = filled(b_out, size_t(N) * C, 4);
  float* mean = filled(b_mean, N, 5);
  float* rstd = filled(b_rstd, N, 6);
  const float* dout = filled(b_dout, size_t(N) * C, 7);
  float* dinp = filled(b_dinp, size_t(N) * C, 8);
  float* dw = filled(b_dw, C, 9);
  float* db = filled(b_db, C, 10);
  for (auto _ : state) {
    kc::layernorm_forward(out, mean, rstd, inp, w, bias, N, C, 1e-5f);
    kc::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    benchmark::DoNotOptimize(dinp);
    benchmark::ClobberMemory();
  }
  // fwd: inp, out; bwd: dout, inp, dinp (read + write). Per-channel/per-row vectors are noise.
  set_bytes(state, int64_t(N) * C * (2 + 4));
}

void bm_rmsnorm(benchmark::State& state) {
  const int N = kRows, C = kChannels;
  AlignedBuffer b_inp, b_w, b_out, b_rstd, b_dout, b_dinp, b_dw;
  const float* inp = filled(b_inp, size_t(N) * C, 1);
  const float* w = filled(b_w, C, 2, 0.1f, 1.0f);
  float* out = filled(b_out, size_t(N) * C, 4);
  float* rstd = filled(b_rstd, N, 6);
  const float* dout = filled(b_dout, size_t(N) * C, 7);
  float* dinp = filled(b_dinp, size_t(N) * C, 8);
  float* dw = filled(b_dw, C, 9);
  for (auto _ : state) {
    kc::rmsnorm_forward(out, rstd, inp, w, N, C, 1e-5f);
    kc::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
    benchmark::DoNotOptimize(dinp);
    benchmark::ClobberMemory();
  }
  set_bytes(state, int64_t(N) * C * (2 + 4));
}

void bm_gelu(benchmark::State& state) {
  const int64_t n = int64_t(kRows) * kHidden;  // GPT-2 MLP hidden activations
  AlignedBuffer b_inp, b_out, b_dout, b_dinp;
  const float* inp = filled(b_inp, n, 1, 3.0f);
  float* out = filled(b_out, n, 2);
  const float* dout = filled(b_dout, n, 3);
  float* dinp = filled(b_dinp, n, 4);
  for (auto _ : state) {
    kc::gelu_forward(out, inp, n);
    kc::gelu_backward(dinp, dout, inp, n, teddy::kernels::Grad::add);
    benchmark::DoNotOptimize(dinp);
    benchmark::ClobberMemory();
  }
  set_bytes(state, n * (2 + 4));
}

void bm_swiglu(benchmark::State& state) {
  const int N = kRows, H = kHidden;
  AlignedBuffer b_gu, b_out, b_dout, b_dgu;
  const float* gate_up = filled(b_gu, size_t(N) * 2 * H, 1, 3.0f);
  float* out = filled(b_out, size_t(N) * H, 2);
  const float* dout = filled(b_dout, size_t(N) * H, 3);
  float* dgate_up = filled(b_dgu, size_t(N) * 2 * H, 4);
  for (auto _ : state) {
    kc::swiglu_forward(out, gate_up, N, H);
    kc::swiglu_backward(dgate_up, dout, gate_up, N, H, teddy::kernels::Grad::add);
    benchmark::DoNotOptimize(dgate_up);
    benchmark::ClobberMemory();
  }
  // fwd: gate_up (2H), out (H); bwd: dout (H), gate_up (2H), dgate_up (2 * 2H).
  set_bytes(state, int64_t(N) * H * (3 + 7));
}

void bm_rope(benchmark::State& state) {
  const int N = kRows, C = kHeads * kHeadSize;
  AlignedBuffer b_x, b_dout, b_dinp;
  float* x = filled(b_x, size_t(N) * C, 1);
  const float* dout = filled(b_dout, size_t(N) * C, 2);
  float* dinp = filled(b_dinp, size_t(N) * C, 3);
  std::vector<int32_t> pos(N);
  for (int i = 0; i < N; ++i) pos[i] = i;  // one sequence of T = 1024
  const std::vector<double> freq = teddy::rope_inv_freq(10000.0f, kHeadSize, teddy::RopeScaling{});
  for (auto _ : state) {
    kc::rope_forward(x, x, pos.data(), N, C, kHeads, kHeadSize, freq.data());  // in place, as used on q/k
    kc::rope_backward(dinp, dout, pos.data(), N, C, kHeads, kHeadSize, freq.data());
    benchmark::DoNotOptimize(dinp);
    benchmark::ClobberMemory();
  }
  // fwd: x read + write; bwd: dout, dinp (read + write).
  set_bytes(state, int64_t(N) * C * (2 + 3));
}

BENCHMARK(bm_layernorm)->Name("layernorm_fwd_bwd/N:1024/C:768")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_rmsnorm)->Name("rmsnorm_fwd_bwd/N:1024/C:768")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_gelu)->Name("gelu_fwd_bwd/N:1024/H:3072")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_swiglu)->Name("swiglu_fwd_bwd/N:1024/H:3072")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_rope)->Name("rope_fwd_bwd/N:1024/heads:12/HS:64")->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
