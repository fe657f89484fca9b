#pragma once
// The measured sgemm ceiling: the fp32 GEMM throughput this machine's BLAS
// reaches on the matrix shapes of GPT-2 124M training. `teddy bench train`
// divides achieved model FLOP/s by it to report MFU against what is attainable
// here (a datasheet peak would hide how far OpenBLAS itself is from the metal);
// `teddy pretrain` and `teddy sft` hand measure_sgemm_gflops to their trainer as the
// MFU denominator (the job's peak_probe, Trainer::set_peak_probe; train/ itself
// measures nothing).
// It times cblas_sgemm directly, not a backend's ops: it is the CPU's ceiling, and a
// device backend will bring its own probe here.
//
// Method:
//  - Shapes: every GEMM of a GPT-2 124M training step at N_tok = 1024 tokens
//    (d_model 768, d_ff 3072, padded vocab 50304), M x N x K with the transposes
//    the model uses (kernels/cpu/linear.cpp). For each linear (OC, C) of qkv
//    (2304, 768), attn proj (768, 768), fc (3072, 768), mlp proj (768, 3072) and
//    the lm head (50304, 768):
//      forward   out = x Wt      rows x OC x C   (NoTrans, Trans)
//      dinp      dx = dout W     rows x C x OC   (NoTrans, NoTrans)
//      dweight   dW = dout^T x   OC x C x rows   (Trans, NoTrans)
//    with rows = 1024 for the blocks and 512 for the lm head (the model computes
//    the head in 512-row chunks at 1024 rows: Model::classifier_chunk_rows).
//  - Operands are filled with small deterministic values (no zeros/denormals).
//  - Each shape: one untimed warm-up call (thread pool start-up, page faults),
//    then timed calls until its share of seconds_budget (warm-up included) is
//    spent, at least 2 and at most 50. A shape's rate is 2*M*N*K / (its fastest
//    call); the median call gives a steadier second figure.
//  - The ceiling is the harmonic mean of the per-shape rates weighted by the
//    share of the step's GEMM FLOPs each shape stands for (a linear's share of
//    12*768*(2304+768+3072+3072) + 50304*768 multiply-adds per token, split
//    equally between its three GEMMs; the lm head's three ~10% each). That is the
//    rate at which the step's GEMMs would run if each ran at its shape's measured
//    rate.
//  - Until 2026-11-30 the ceiling timed 5 of these shapes (fc forward, dinp and
//    dweight, mlp proj forward at ~17% each, lm head forward standing for the
//    whole head at ~31%); five_shape_gflops keeps that figure for older records.
//    The lm head's backward shapes run ~5-10% slower than its forward, so the
//    15-shape ceiling comes out 1-3% lower (docs/BENCHMARKS.md): it is what the
//    step really asks of the BLAS.
//  - Thread count: omp_set_num_threads and openblas_set_num_threads are set to
//    `threads` (<= 0: keep the current omp_get_max_threads()) and restored after.
// The budget is a target, not a bound: each shape takes at least 3 calls
// (~0.5 TFLOP in all: ~1.6 s at 300 GFLOP/s). The operands take ~412 MB (the
// largest A, B and C over the shapes: the lm head's).
#include <string>
#include <vector>

#include "teddy/core/buffer.h"

namespace teddy {

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
  double five_shape_gflops = 0.0;  // the pre-2026-11-30 definition (5 shapes), for older records
  std::vector<SgemmShapeRate> shapes;
};

// The operands allocated and filled once, for repeated measurements (`teddy bench
// train` samples the ceiling between timed steps without re-faulting ~412 MB of
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

}  // namespace teddy
