// Tokenizer throughput (MB/s of input text).
//   TEDDY_BENCH_TEXT       text file to encode (default: tests/tokenizer/tokenizer_mixed.txt
//                          repeated to ~4 MB)
//   TEDDY_BENCH_TOKENIZER  tokenizer file (default: build/npm/gpt2.tiktoken from
//                          tests/tokenizer/setup_tiktoken.sh, else a 8k-vocab tokenizer
//                          trained on the text)
// bench/tokenizer_vs_tiktoken.sh runs this next to the npm tiktoken package.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/tokenizer.h"

namespace {

#ifndef TEDDY_SOURCE_DIR
#define TEDDY_SOURCE_DIR "."
#endif

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("bench_tokenizer: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& text() {
  static const std::string t = [] {
    if (const char* p = std::getenv("TEDDY_BENCH_TEXT")) return slurp(p);
    const std::string one = slurp(std::string(TEDDY_SOURCE_DIR) + "/tests/tokenizer/tokenizer_mixed.txt");
    std::string s;
    while (s.size() < (4u << 20)) s += one;
    return s;
  }();
  return t;
}

const teddy::Tokenizer& tokenizer() {
  static const teddy::Tokenizer t = [] {
    if (const char* p = std::getenv("TEDDY_BENCH_TOKENIZER")) return teddy::Tokenizer::load(p);
    const std::string gpt2 = std::string(TEDDY_SOURCE_DIR) + "/build/npm/gpt2.tiktoken";
    if (std::ifstream(gpt2).good()) return teddy::Tokenizer::load(gpt2);
    teddy::BpeTrainer trainer({.vocab_size = 8192});
    trainer.add_text(std::string_view(text()).substr(0, 1 << 20));
    return trainer.train();
  }();
  return t;
}

void BM_encode(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const auto& tok = tokenizer();
  const auto& t = text();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = threads == 1 ? tok.encode(t) : tok.encode_parallel(t, threads);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(state.iterations() * t.size()) / 1e6,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_encode)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_decode(benchmark::State& state) {
  const auto& tok = tokenizer();
  const auto ids = tok.encode(text());
  for (auto _ : state) benchmark::DoNotOptimize(tok.decode(ids).size());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text().size()));
}
BENCHMARK(BM_decode)->Unit(benchmark::kMillisecond);

void BM_train(benchmark::State& state) {
  const std::string_view corpus = std::string_view(text()).substr(0, 1 << 20);
  for (auto _ : state) {
    teddy::BpeTrainer trainer({.vocab_size = static_cast<int>(state.range(0))});
    trainer.add_text(corpus);
    benchmark::DoNotOptimize(trainer.train().vocab_size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * corpus.size()));
}
BENCHMARK(BM_train)->Arg(4096)->ArgName("vocab")->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
