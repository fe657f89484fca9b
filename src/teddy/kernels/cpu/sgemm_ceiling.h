#pragma once
// The measured sgemm ceiling: the fp32 GEMM throughput this machine's BLAS
// reaches on the matrix shapes of GPT-2 124M training. `teddy bench train`
// divides achieved model FLOP/s by it to report MFU against what is attainable
// here (a datasheet peak would hide how far OpenBLAS itself is from the metal).
//
// Method:
//  - Shapes (M x N x K, with the transposes training uses), tokens per step
//    N_tok = 1024, d_model 768, d_ff 3072, padded vocab 50304:
//      fc forward      out = x Wt      1024 x 3072 x 768   (NoTrans, Trans)
//      proj forward    out = x Wt      1024 x 768 x 3072   (NoTrans, Trans)
//      fc dinp         dx = dout W     1024 x 768 x 3072   (NoTrans, NoTrans)
//      fc dweight      dW = dout^T x   3072 x 768 x 1024   (Trans, NoTrans)
//      lm head chunk   out = x Wt      512 x 50304 x 768   (NoTrans, Trans)
//    (the lm head is timed on a 512-row chunk, as the model computes it for 1024
//    rows: Model::classifier_chunk_rows).
//  - Operands are filled with small deterministic values (no zeros/denormals).
//  - Each shape: one untimed warm-up call (thread pool start-up, page faults),
//    then timed calls until its share of seconds_budget (warm-up included) is
//    spent, at least 2 and at most 50. A shape's rate is 2*M*N*K / (its fastest
//    call); the median call gives a steadier second figure.
//  - The ceiling is the harmonic mean of the per-shape rates weighted by the
//    share of a GPT-2 124M step's GEMM FLOPs each shape stands for: the lm head
//    50304*768 of the 12*768*(2304+768+3072+3072) + 50304*768 FLOPs per token
//    (~31%), the four block shapes ~17% each. That is the rate at which the
//    step's GEMMs would run if each ran at its shape's measured rate.
//  - Thread count: omp_set_num_threads and openblas_set_num_threads are set to
//    `threads` (<= 0: keep the current omp_get_max_threads()) and restored after.
// The budget is a target, not a bound: each shape takes at least 3 calls
// (~0.12 TFLOP in all: ~0.9 s on one Sapphire Rapids core, ~0.45 s on two).
#include <string>
#include <vector>

#include "teddy/core/buffer.h"

namespace teddy::kernels::cpu {

struct SgemmShapeRate {
  std::string name;  // e.g. "fc forward"
  int M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  double weight = 0.0;     // share of the step's GEMM FLOPs (weights sum to 1)
  int calls = 0;           // timed calls
  double best_s = 0.0;     // fastest timed call
  double median_s = 0.0;   // median timed call
  double best_gflops = 0.0;
  double median_gflops = 0.0;
};

struct SgemmCeiling {
  int threads = 0;
  double gflops = 0.0;         // the ceiling: weighted harmonic mean of per-shape best rates
  double median_gflops = 0.0;  // the same over per-shape median rates (a steadier figure)
  std::vector<SgemmShapeRate> shapes;
};

// The operands allocated and filled once, for repeated measurements (`teddy bench
// train` samples the ceiling between timed steps without re-faulting ~270 MB of
// pages each time). measure() behaves as measure_sgemm_ceiling.
class SgemmCeilingProbe {
 public:
  explicit SgemmCeilingProbe(int threads);
  SgemmCeiling measure(double seconds_budget);

 private:
  int threads_;
  std::vector<SgemmShapeRate> shapes_;
  AlignedBuffer a_, b_, c_;
};

// Measures every shape above. Throws teddy::Error if seconds_budget is not positive.
SgemmCeiling measure_sgemm_ceiling(int threads, double seconds_budget = 1.0);

// measure_sgemm_ceiling(threads, seconds_budget).gflops.
double measure_sgemm_gflops(int threads, double seconds_budget = 1.0);

}  // namespace teddy::kernels::cpu
