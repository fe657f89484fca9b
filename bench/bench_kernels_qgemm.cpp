// The quantized base's GEMMs (QLoRA) against the plain ones, at llama-1B's block linear
// shapes (Llama-3.2-1B: C 2048, qkv OC 3072, o_proj 2048, gate|up 16384, down C 8192)
// and N = 512 rows (micro-batch 1, T = 512). Per shape and direction (forward
// out = x W^T; backward dx = dout W, the only product a frozen base has), arg impl:
//   0 f32-sgemm     fp32 W, OpenBLAS cblas_sgemm (cpu::linear_forward; backward
//                   without the weight gradient)
//   1 onednn-f32    fp32 W, oneDNN fp32 matmul
//   2 onednn-bf16   fp32 W, oneDNN bf16 x bf16 -> fp32 (both operands rounded per call)
//   3 nf4-f32tile   NF4 W, ~1 MiB fp32 tiles + sgemm (cpu::linear_*_q)
//   4 nf4-bf16tile  NF4 W, ~1 MiB bf16 tiles + oneDNN bf16 (onednn::linear_*_q_bf16)
//   5 bf16-direct   bf16 W read as stored by oneDNN bf16 (onednn::linear_*_q_bf16)
//   6 bf16-f32tile  bf16 W, fp32 tiles + sgemm (cpu::linear_*_q)
// 3-6 skip where the CPU lacks native bf16 (2, 4, 5). GFLOP/s: 2 N C OC per call.
//   ./bench_kernels_qgemm [--benchmark_filter=fwd] ; OMP_NUM_THREADS sets the threads.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/core/nf4.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

namespace {

namespace k = teddy::kernels;
using teddy::AlignedBuffer;

constexpr int kRows = 512;
constexpr const char* kImpl[] = {"f32-sgemm",    "onednn-f32",  "onednn-bf16", "nf4-f32tile",
                                 "nf4-bf16tile", "bf16-direct", "bf16-f32tile"};

void fill(float* p, size_t n, uint32_t seed, float scale) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const uint32_t h = (static_cast<uint32_t>(i) ^ (seed * 2654435761u)) * 2246822519u;
    p[i] = scale * (static_cast<float>((h >> 8) & 0xffff) / 32768.0f - 1.0f);
  }
}

// Args: C, OC, impl, backward (0 forward, 1 backward).
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "OC", "impl", "bwd"});
  for (int bwd = 0; bwd < 2; ++bwd)
    for (auto [c, oc] : {std::pair{2048, 3072}, {2048, 2048}, {2048, 16384}, {8192, 2048}})
      for (int impl = 0; impl < 7; ++impl) b->Args({c, oc, impl, bwd});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_qgemm(benchmark::State& state) {
  const int N = kRows, C = static_cast<int>(state.range(0)), OC = static_cast<int>(state.range(1));
  const int impl = static_cast<int>(state.range(2));
  const bool bwd = state.range(3) != 0;
  const bool needs_bf16 = impl == 2 || impl == 4 || impl == 5;
  if (needs_bf16 && !k::onednn::native_bf16()) {
    state.SkipWithError("no native bf16 on this CPU");
    return;
  }
  state.SetLabel(kImpl[impl]);
  const size_t nw = static_cast<size_t>(OC) * C;
  AlignedBuffer w_b(nw * sizeof(float)), x_b(static_cast<size_t>(N) * C * sizeof(float));
  AlignedBuffer d_b(static_cast<size_t>(N) * OC * sizeof(float)), o_b(static_cast<size_t>(N) * OC * sizeof(float));
  AlignedBuffer dx_b(static_cast<size_t>(N) * C * sizeof(float));
  float* w = w_b.as<float>();
  fill(w, nw, 2, 0.02f);
  fill(x_b.as<float>(), static_cast<size_t>(N) * C, 1, 1.0f);
  fill(d_b.as<float>(), static_cast<size_t>(N) * OC, 4, 1e-3f);
  k::Nf4Part q;  // one part: a single HF module's weight
  std::vector<uint16_t> w16;
  k::QuantWeight qw;
  if (impl == 3 || impl == 4) {
    q = {0, OC, teddy::nf4_quantize(w, static_cast<int64_t>(nw), true)};
    qw.kind = k::QuantWeight::Kind::nf4;
    qw.nf4 = &q;
    qw.nf4_parts = 1;
  } else if (impl == 5 || impl == 6) {
    w16.resize(nw);
    teddy::convert_f32_to_bf16(w16.data(), w, nw);
    qw.kind = k::QuantWeight::Kind::bf16;
    qw.bf16 = w16.data();
  }
  if (impl >= 3) w_b = AlignedBuffer();  // the quantized runs hold no fp32 weight
  const float* x = x_b.as<float>();
  const float* d = d_b.as<float>();
  float* out = o_b.as<float>();
  float* dx = dx_b.as<float>();
  const auto add = k::Grad::set;
  for (auto _ : state) {
    switch (impl) {
      case 0:
        if (bwd) k::cpu::linear_backward(dx, nullptr, nullptr, d, x, w, N, C, OC, add, add);
        else k::cpu::linear_forward(out, x, w, nullptr, N, C, OC);
        break;
      case 1:
        if (bwd) k::onednn::linear_backward(dx, nullptr, nullptr, d, x, w, N, C, OC, add, add);
        else k::onednn::linear_forward(out, x, w, nullptr, N, C, OC);
        break;
      case 2:
        if (bwd) k::onednn::linear_backward_bf16(dx, nullptr, nullptr, d, x, w, N, C, OC, add, add);
        else k::onednn::linear_forward_bf16(out, x, w, nullptr, N, C, OC);
        break;
      case 3:
      case 6:
        if (bwd) k::cpu::linear_backward_q(dx, d, &qw, N, C, OC, add);
        else k::cpu::linear_forward_q(out, x, &qw, nullptr, N, C, OC);
        break;
      default:
        if (bwd) k::onednn::linear_backward_q_bf16(dx, d, &qw, N, C, OC, add);
        else k::onednn::linear_forward_q_bf16(out, x, &qw, nullptr, N, C, OC);
        break;
    }
    benchmark::DoNotOptimize(bwd ? dx : out);
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * N * C * OC, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}
BENCHMARK(BM_qgemm)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
