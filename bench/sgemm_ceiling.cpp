// The sgemm ceiling measurement (method in sgemm_ceiling.h).
#include "bench/sgemm_ceiling.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "teddy/core/buffer.h"
#include "teddy/core/error.h"

namespace teddy {

namespace {

constexpr int kMinCalls = 2;
constexpr int kMaxCalls = 50;

// Sets OpenMP's and OpenBLAS's thread counts for its lifetime.
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int threads)
      : omp_prev_(omp_get_max_threads()), blas_prev_(openblas_get_num_threads()) {
    const int n = threads > 0 ? threads : omp_prev_;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    threads_ = n;
  }
  ~ThreadCountScope() {
    // BLAS first: the OpenMP build's openblas_set_num_threads also calls
    // omp_set_num_threads, which would otherwise clobber the caller's OpenMP count.
    openblas_set_num_threads(blas_prev_);
    omp_set_num_threads(omp_prev_);
  }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;
  int threads() const { return threads_; }

 private:
  int omp_prev_, blas_prev_, threads_ = 0;
};

// Small values in [-0.5, 0.5), deterministic, no zeros or denormals in products.
void fill(float* x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1u;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const uint32_t h = (static_cast<uint32_t>(i) ^ s) * 2246822519u;
    x[i] = static_cast<float>((h >> 8) & 0xffff) / 65536.0f - 0.5f + 1e-3f;
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Every GEMM of a GPT-2 124M training step at 1024 tokens, as the model calls it
// (kernels/cpu/linear.cpp): per linear (OC, C) a forward out = x W^T (rows, OC, C;
// NoTrans, Trans), an input gradient dx = dout W (rows, C, OC; NoTrans, NoTrans) and a
// weight gradient dW = dout^T x (OC, C, rows; Trans, NoTrans), all three with the
// same FLOPs. The lm head runs on 512-row chunks (Model::classifier_chunk_rows).
// Weights: each linear's share of the multiply-adds per token, split in three.
std::vector<SgemmShapeRate> ceiling_shapes() {
  struct Linear { const char* name; int rows, OC, C; double macs; };
  const Linear linears[] = {
      {"qkv", 1024, 2304, 768, 12.0 * 2304 * 768},  {"attn proj", 1024, 768, 768, 12.0 * 768 * 768},
      {"fc", 1024, 3072, 768, 12.0 * 3072 * 768},   {"mlp proj", 1024, 768, 3072, 12.0 * 768 * 3072},
      {"lm head", 512, 50304, 768, 50304.0 * 768},
  };
  double total = 0;
  for (const auto& l : linears) total += l.macs;
  std::vector<SgemmShapeRate> shapes;
  for (const auto& l : linears) {
    const double w = l.macs / total / 3;
    const std::string n = l.name;
    shapes.push_back({n + " forward", l.rows, l.OC, l.C, false, true, w});
    shapes.push_back({n + " dinp", l.rows, l.C, l.OC, false, false, w});
    shapes.push_back({n + " dweight", l.OC, l.C, l.rows, true, false, w});
  }
  return shapes;
}

// The ceiling as defined before every shape was timed (fc forward, dinp and dweight,
// mlp proj forward at ~17% each, lm head forward ~31%): kept so older records compare.
double five_shape_ceiling(const std::vector<SgemmShapeRate>& shapes) {
  constexpr double kBlock = 12.0 * 768 * (2304 + 768 + 3072 + 3072), kHead = 50304.0 * 768;
  constexpr double kHeadShare = kHead / (kBlock + kHead), kBlockShare = (1.0 - kHeadShare) / 4;
  double inv = 0;
  for (const auto& s : shapes) {
    if (s.name == "fc forward" || s.name == "fc dinp" || s.name == "fc dweight" || s.name == "mlp proj forward")
      inv += kBlockShare / s.best_gflops;
    if (s.name == "lm head forward") inv += kHeadShare / s.best_gflops;
  }
  return 1.0 / inv;
}

}  // namespace

SgemmCeilingProbe::SgemmCeilingProbe(int threads) : threads_(threads), shapes_(ceiling_shapes()) {
  // One allocation for the largest operands, reused by every shape and every measurement.
  size_t max_a = 0, max_b = 0, max_c = 0;
  for (const auto& s : shapes_) {
    max_a = std::max(max_a, static_cast<size_t>(s.M) * s.K);
    max_b = std::max(max_b, static_cast<size_t>(s.K) * s.N);
    max_c = std::max(max_c, static_cast<size_t>(s.M) * s.N);
  }
  ThreadCountScope scope(threads_);  // parallel fill: pages land near their threads
  a_.resize(max_a * sizeof(float));
  b_.resize(max_b * sizeof(float));
  c_.resize(max_c * sizeof(float));
  fill(a_.as<float>(), max_a, 1);
  fill(b_.as<float>(), max_b, 2);
}

SgemmCeiling SgemmCeilingProbe::measure(double seconds_budget) {
  TEDDY_CHECK(seconds_budget > 0.0, "measure_sgemm_ceiling: seconds_budget must be positive");
  ThreadCountScope scope(threads_);

  SgemmCeiling result;
  result.threads = scope.threads();
  result.shapes = shapes_;
  float* a = a_.as<float>();
  float* b = b_.as<float>();
  float* c = c_.as<float>();

  const double per_shape_budget = seconds_budget / static_cast<double>(result.shapes.size());
  double inv_best = 0.0, inv_median = 0.0;  // sum of weight / rate
  std::vector<double> times;
  times.reserve(kMaxCalls);
  for (auto& s : result.shapes) {
    // Row-major operand strides: A is (M,K) or, transposed, stored (K,M); B likewise.
    const int lda = s.trans_a ? s.M : s.K;
    const int ldb = s.trans_b ? s.K : s.N;
    auto call = [&] {
      cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                  s.M, s.N, s.K, 1.0f, a, lda, b, ldb, 0.0f, c, s.N);
    };
    const auto shape_start = std::chrono::steady_clock::now();  // the warm-up counts against the budget
    call();  // warm-up: thread pool start-up, page faults on c
    times.clear();
    while (static_cast<int>(times.size()) < kMaxCalls &&
           (static_cast<int>(times.size()) < kMinCalls || seconds_since(shape_start) < per_shape_budget)) {
      const auto t0 = std::chrono::steady_clock::now();
      call();
      times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    const double flops = 2.0 * s.M * s.N * s.K;
    s.calls = static_cast<int>(times.size());
    s.best_s = times.front();
    s.median_s = times[times.size() / 2];
    s.best_gflops = flops / s.best_s * 1e-9;
    s.median_gflops = flops / s.median_s * 1e-9;
    inv_best += s.weight / s.best_gflops;
    inv_median += s.weight / s.median_gflops;
  }
  result.gflops = 1.0 / inv_best;
  result.median_gflops = 1.0 / inv_median;
  result.five_shape_gflops = five_shape_ceiling(result.shapes);
  return result;
}

SgemmCeiling measure_sgemm_ceiling(int threads, double seconds_budget) {
  // Checked here too so a bad budget fails before the operands are allocated.
  TEDDY_CHECK(seconds_budget > 0.0, "measure_sgemm_ceiling: seconds_budget must be positive");
  return SgemmCeilingProbe(threads).measure(seconds_budget);
}

double measure_sgemm_gflops(int threads, double seconds_budget) {
  return measure_sgemm_ceiling(threads, seconds_budget).gflops;
}

}  // namespace teddy
