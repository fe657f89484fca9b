// GEMM-bound and optimizer kernels at GPT-2 124M training shapes (N = B*T = 1024
// tokens): linear forward/backward (FLOP/s), the fused cross-entropy over the
// padded vocab, adamw_update and sum_squares over all 124M parameters (bytes/s),
// and the measured sgemm ceiling those FLOP/s are judged against.
// The linears run per GEMM library (arg lib: 0 cpu = OpenBLAS, 1 onednn fp32,
// 2 onednn-bf16 = bf16 inputs, fp32 accumulation; skipped where the CPU lacks native bf16).
//   ./bench_kernels_gemm [--benchmark_filter=linear]
// ONEDNN_MAX_CPU_ISA=AVX2 (or AVX512_CORE, ...) caps oneDNN's ISA for a comparison.
// Threads: OMP_NUM_THREADS (OpenBLAS follows OpenMP's setting).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "teddy/core/buffer.h"
#include "bench/sgemm_ceiling.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/kernels.h"

namespace {

namespace kc = teddy::kernels::cpu;
using teddy::AlignedBuffer;

constexpr int kTokens = 1024;
constexpr int kVocab = 50257, kVocabPadded = 50304;
constexpr int64_t kParams = 124475904;  // GPT-2 124M with the padded vocabulary

// Deterministic, small, non-zero values (parallel: the 124M-float buffers are large).
float* filled(AlignedBuffer& buf, size_t n, uint32_t seed, float scale = 0.02f) {
  buf.resize(n * sizeof(float));
  float* p = buf.as<float>();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const uint32_t h = (static_cast<uint32_t>(i) ^ (seed * 2654435761u)) * 2246822519u;
    p[i] = scale * (static_cast<float>((h >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
  return p;
}

benchmark::Counter flop_rate(double flops_per_iter) {
  return benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate,
                            benchmark::Counter::kIs1000);
}

// Args: C (in features), OC (out features), lib (the backend: kLibs). The lm head
// (OC = 50304) has no bias.
constexpr const char* kLibs[] = {"cpu", "onednn", "onednn-bf16"};
void linear_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "OC", "lib"});
  for (int lib = 0; lib < 3; ++lib)
    for (auto [c, oc] : {std::pair{768, 2304}, {768, 3072}, {3072, 768}, {768, kVocabPadded}}) b->Args({c, oc, lib});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// The table of arg `lib`, or nullptr (the run is skipped) where it is not available here.
const teddy::kernels::Backend* lib_table(benchmark::State& state) {
  const char* name = kLibs[state.range(2)];
  for (const auto* b : teddy::kernels::available_backends())
    if (std::string(b->name) == name) {
      state.SetLabel(teddy::kernels::gemm_description(*b));
      return b;
    }
  state.SkipWithError((std::string(name) + " not available on this CPU").c_str());
  return nullptr;
}

void BM_linear_forward(benchmark::State& state) {
  const int N = kTokens, C = static_cast<int>(state.range(0)), OC = static_cast<int>(state.range(1));
  AlignedBuffer inp_b, w_b, bias_b, out_b(static_cast<size_t>(N) * OC * sizeof(float));
  const float* inp = filled(inp_b, static_cast<size_t>(N) * C, 1, 1.0f);
  const float* w = filled(w_b, static_cast<size_t>(OC) * C, 2);
  const float* bias = OC == kVocabPadded ? nullptr : filled(bias_b, OC, 3);
  const teddy::kernels::Backend* kb = lib_table(state);
  if (!kb) return;
  for (auto _ : state) {
    kb->linear_forward(out_b.as<float>(), inp, w, bias, N, C, OC);
    benchmark::DoNotOptimize(out_b.data());
  }
  state.counters["FLOP/s"] = flop_rate(2.0 * N * C * OC);
}
BENCHMARK(BM_linear_forward)->Apply(linear_shapes);

void BM_linear_backward(benchmark::State& state) {
  const int N = kTokens, C = static_cast<int>(state.range(0)), OC = static_cast<int>(state.range(1));
  AlignedBuffer inp_b, w_b, dout_b;
  AlignedBuffer dinp_b(static_cast<size_t>(N) * C * sizeof(float));
  AlignedBuffer dw_b(static_cast<size_t>(OC) * C * sizeof(float)), db_b(static_cast<size_t>(OC) * sizeof(float));
  const float* inp = filled(inp_b, static_cast<size_t>(N) * C, 1, 1.0f);
  const float* w = filled(w_b, static_cast<size_t>(OC) * C, 2);
  const float* dout = filled(dout_b, static_cast<size_t>(N) * OC, 4, 1e-3f);
  float* dbias = OC == kVocabPadded ? nullptr : db_b.as<float>();
  const teddy::kernels::Backend* kb = lib_table(state);
  if (!kb) return;
  for (auto _ : state) {
    kb->linear_backward(dinp_b.as<float>(), dw_b.as<float>(), dbias, dout, inp, w, N, C, OC,
                        teddy::kernels::Grad::add, teddy::kernels::Grad::add);
    benchmark::DoNotOptimize(dw_b.data());
  }
  state.counters["FLOP/s"] = flop_rate(4.0 * N * C * OC);  // dinp and dweight GEMMs
}
BENCHMARK(BM_linear_backward)->Apply(linear_shapes);

void BM_crossentropy(benchmark::State& state) {
  const int N = kTokens, V = kVocab, Vp = kVocabPadded;
  AlignedBuffer logits_b, dlogits_b(static_cast<size_t>(N) * Vp * sizeof(float));
  const float* logits = filled(logits_b, static_cast<size_t>(N) * Vp, 5, 4.0f);
  std::vector<int32_t> targets(N);
  for (int i = 0; i < N; ++i) targets[i] = (i * 7919) % V;
  std::vector<float> losses(N);
  for (auto _ : state) {
    benchmark::DoNotOptimize(kc::crossentropy_forward_backward(losses.data(), dlogits_b.as<float>(), logits,
                                                               targets.data(), N, V, Vp, -100, 1.0f / N));
  }
  // logits read, dlogits written
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(N) * Vp * 4);
}
BENCHMARK(BM_crossentropy)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_adamw_update(benchmark::State& state) {
  const int64_t n = kParams;
  AlignedBuffer p_b, g_b, m_b(n * sizeof(float)), v_b(n * sizeof(float));
  float* p = filled(p_b, n, 6);
  const float* g = filled(g_b, n, 7, 1e-3f);
  int64_t t = 0;
  for (auto _ : state) {
    kc::adamw_update(p, g, m_b.as<float>(), v_b.as<float>(), n, 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, ++t, 1.0f);
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(state.iterations() * n * 28);  // read p, g, m, v; write p, m, v
}
BENCHMARK(BM_adamw_update)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_sum_squares(benchmark::State& state) {
  const int64_t n = kParams;
  AlignedBuffer x_b;
  const float* x = filled(x_b, n, 8, 1e-3f);
  for (auto _ : state) benchmark::DoNotOptimize(kc::sum_squares(x, n));
  state.SetBytesProcessed(state.iterations() * n * 4);
}
BENCHMARK(BM_sum_squares)->Unit(benchmark::kMillisecond)->UseRealTime();

// The ceiling MFU is reported against (bench/sgemm_ceiling.h), with every OpenMP thread.
void BM_sgemm_ceiling(benchmark::State& state) {
  teddy::SgemmCeiling r;
  for (auto _ : state) r = teddy::measure_sgemm_ceiling(omp_get_max_threads(), 1.0);
  state.counters["threads"] = r.threads;
  state.counters["GFLOP/s"] = r.gflops;
  state.counters["median_GFLOP/s"] = r.median_gflops;
  for (const auto& s : r.shapes) {
    std::string key = s.name;
    for (char& ch : key) ch = ch == ' ' ? '_' : ch;
    state.counters[key] = s.best_gflops;
  }
}
BENCHMARK(BM_sgemm_ceiling)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
