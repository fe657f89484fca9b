#pragma once
// The machine's physical arithmetic peak, measured: the denominator of `mfu_peak` in
// `teddy bench train` and of the MFU on the training progress line (a BLAS ceiling
// hides how far the BLAS itself is from the metal; a datasheet peak hides the clock
// this VM really runs at).
//
// Method: every thread runs a loop of independent vector multiply-adds on registers
// only (16 accumulators: enough to cover the FMA latency of 4 cycles on two ports),
// long enough (~0.1-0.2 s) for the clock to settle; the rate is the sum over threads of
// each thread's FLOPs over its own CPU time (so other processes on a shared machine do
// not lower the silicon's figure; on a quiet machine it equals FLOPs over wall time),
// best of 3 repeats.
//  - fp32: vfmadd231ps, on the widest ISA this CPU has, chosen at run time: AVX-512
//    (16 lanes, 32 FLOP per instruction) or AVX2 + FMA (8 lanes, 16 FLOP).
//  - bf16: vdpbf16ps (AVX512_BF16: 32 bf16 pairs into 16 fp32 lanes, 64 FLOP per
//    instruction), only where the CPU has it; measured 213 GFLOP/s vs 429 for the FMA
//    loop on a 2-core Sapphire Rapids (so its bf16 GEMMs go through AMX), 790 vs 424 on
//    a 2-core Zen 5 (issue 14). AMX (Sapphire Rapids and later) is not
//    probed: its tiles go faster still, so bf16 MFU against this figure can pass 100%
//    where oneDNN runs AMX kernels (the report says which ISA oneDNN used).
// Measured once per process per thread count and cached (the first call costs
// ~1-2 s); runtime dispatch, no -march assumption: one binary on every x86-64 CPU.
#include <string>

namespace teddy {

struct PeakFlops {
  int threads = 0;
  std::string fp32_isa;      // "avx512" | "avx2" | "none" (no FMA: peak 0)
  double fp32_gflops = 0;    // FMA loop
  std::string bf16_isa;      // "avx512_bf16" | "none"
  double bf16_gflops = 0;    // vdpbf16ps loop; 0 where absent
};

// threads <= 0: omp_get_max_threads().
const PeakFlops& measure_peak_flops(int threads);
// The peak a run's GEMMs can reach: for bf16 products the larger of the vdpbf16ps and
// the FMA loop's (on Sapphire Rapids vdpbf16ps measures half the FMA rate; on Zen 5
// 1.9x), else the FMA loop's.
double peak_gflops_for(const PeakFlops& p, bool bf16_products);

}  // namespace teddy
