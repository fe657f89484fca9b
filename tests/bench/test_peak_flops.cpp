// The physical peak probe: the ISA it reports is the CPU's widest (runtime dispatch,
// no -march assumption), the figures are positive and finite where the ISA exists and
// 0 where it does not, a second call for the same thread count is the cached result
// (measured once per process), and bf16 products get the larger of the two peaks. No
// timing assertions beyond "> 0".
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "bench/peak_flops.h"

namespace {

TEST(PeakFlops, ReportsTheWidestIsaAndCachesPerThreadCount) {
  __builtin_cpu_init();
  const teddy::PeakFlops& p = teddy::measure_peak_flops(1);
  EXPECT_EQ(p.threads, 1);
  const bool avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  EXPECT_EQ(p.fp32_isa, avx512 ? "avx512" : avx2 ? "avx2" : "none");
  if (avx2 || avx512) {
    EXPECT_TRUE(std::isfinite(p.fp32_gflops));
    EXPECT_GT(p.fp32_gflops, 0.0);
  }
  const bool bf16 = __builtin_cpu_supports("avx512bf16");
  EXPECT_EQ(p.bf16_isa, bf16 ? "avx512_bf16" : "none");
  EXPECT_EQ(p.bf16_gflops > 0, bf16);
  EXPECT_TRUE(std::isfinite(p.bf16_gflops));
  EXPECT_EQ(&teddy::measure_peak_flops(1), &p);  // cached: measured once per process
  EXPECT_EQ(teddy::peak_gflops_for(p, false), p.fp32_gflops);
  EXPECT_EQ(teddy::peak_gflops_for(p, true), std::max(p.bf16_gflops, p.fp32_gflops));
}

}  // namespace
