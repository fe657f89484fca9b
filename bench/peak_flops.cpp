// The FMA / vdpbf16ps peak loops (peak_flops.h). Each loop is compiled for its ISA
// with __attribute__((target)) and called only where the CPU has it.
#include "bench/peak_flops.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <mutex>

namespace teddy {

namespace {

constexpr long kIters = 1 << 22;  // per repeat: ~0.1-0.2 s at 3 GHz

// 16 independent accumulator chains; returns a value so nothing is optimised away.
__attribute__((target("avx512f"))) float fma_avx512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_avx2(long iters) {
  __m256 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_avx512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  // bf16 pairs of small values (0x3400 ~ 1.2e-7): the sums stay finite.
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3400), b = (__m512bh)_mm512_set1_epi16(0x3400);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

volatile float g_sink;  // keeps the loops' results alive

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// GFLOP/s of `loop` run by `threads` threads at once: each thread's FLOPs over its own
// CPU time (what a core does while it runs the thread), summed over the threads; best
// of 3. CPU time, not wall time: on a shared machine the wall clock also counts the
// time other processes held the core, which is not a property of the silicon (on a
// quiet machine the two agree). The step's MFU stays wall-clock GFLOP/s over this.
template <class Loop>
double rate(Loop loop, double flops_per_iter, int threads) {
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
      const double c0 = thread_cpu_seconds();
      const float v = loop(kIters);
      if (v == 12345.0f) g_sink = v;
      sum += flops_per_iter * static_cast<double>(kIters) / (thread_cpu_seconds() - c0) / 1e9;
    }
    best = std::max(best, sum);
  }
  return best;
}

PeakFlops measure(int threads) {
  PeakFlops p;
  p.threads = threads;
  __builtin_cpu_init();
  // 16 instructions per iteration: x lanes x 2 FLOP (fma) or x 4 (dpbf16: 2 products, 2 adds per lane).
  if (__builtin_cpu_supports("avx512f")) {
    p.fp32_isa = "avx512";
    p.fp32_gflops = rate(fma_avx512, 16.0 * 16 * 2, threads);
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    p.fp32_isa = "avx2";
    p.fp32_gflops = rate(fma_avx2, 16.0 * 8 * 2, threads);
  } else {
    p.fp32_isa = "none";
  }
  if (__builtin_cpu_supports("avx512bf16")) {
    p.bf16_isa = "avx512_bf16";
    p.bf16_gflops = rate(dpbf16_avx512, 16.0 * 16 * 4, threads);
  } else {
    p.bf16_isa = "none";
  }
  return p;
}

}  // namespace

const PeakFlops& measure_peak_flops(int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  static std::mutex mu;
  static std::map<int, PeakFlops> cache;  // node-based: references stay valid
  const std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(threads);
  if (it == cache.end()) it = cache.emplace(threads, measure(threads)).first;
  return it->second;
}

double peak_gflops_for(const PeakFlops& p, bool bf16_products) {
  // bf16 products can always run as fp32 FMAs, so their peak is the larger of the two
  // (vdpbf16ps runs at half the FMA rate on Sapphire Rapids, 1.9x on Zen 5: measured).
  return bf16_products ? std::max(p.bf16_gflops, p.fp32_gflops) : p.fp32_gflops;
}

}  // namespace teddy
