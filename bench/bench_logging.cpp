// What a training step's logging costs (issue 23's budget: under 1% of a gpt2-mini
// step): one TensorBoard event of a step's ten scalars (encode, frame, CRC, fwrite,
// fflush) and the peak-RSS read from /proc the step's metrics carry. Compare with
// `step_s` of a gpt2-mini run in the same session (docs/BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "teddy/core/memory_usage.h"
#include "teddy/io/tensorboard_events.h"

namespace {

void BM_TensorBoardStepEvent(benchmark::State& state) {
  const std::string dir = std::filesystem::temp_directory_path() / ("teddy_bench_tb_" + std::to_string(::getpid()));
  {
    teddy::EventFileWriter w(dir);
    int64_t step = 0;
    for (auto _ : state) {
      ++step;
      const float x = static_cast<float>(step);
      w.add_scalars(step, {{"loss/train", 3.1f + x * 1e-6f},
                           {"lr", 3e-4f},
                           {"grad_norm", 0.8f},
                           {"throughput/tokens_per_s", 12345.6f},
                           {"throughput/mfu", 0.42f},
                           {"tokens/seen", x * 8192},
                           {"tokens/prose", x * 4096},
                           {"tokens/code", x * 2048},
                           {"tokens/multilingual", x * 2048},
                           {"memory/peak_rss_bytes", 1.5e9f}});
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_TensorBoardStepEvent);

void BM_PeakRssRead(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(teddy::peak_rss_bytes());
}
BENCHMARK(BM_PeakRssRead);

}  // namespace

BENCHMARK_MAIN();
