// `teddy bench <what>`: measurement subcommands. Each one is wired by its own
// add_bench_<what>(bench, run) function; register_bench calls them, so a sibling
// (`teddy bench train`, ...) is one more function and one more call.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teddy/bench/attention_bench.h"
#include "teddy/cli/commands.h"
#include "teddy/plan/units.h"

namespace teddy::cli {

namespace {

void print_attention_result(const AttentionBenchResult& r, bool json) {
  if (json) {
    nlohmann::json j = {{"impl", r.impl},       {"seq", r.seq},         {"batch", r.batch},
                        {"heads", r.heads},     {"kv_heads", r.kv_heads}, {"head_dim", r.head_dim},
                        {"threads", r.threads}, {"causal", true}};
    if (r.skipped) {
      j["skipped"] = true;
      j["needed_bytes"] = r.needed_bytes;
    } else {
      j["reps"] = r.reps;
      j["ms_fwd"] = r.ms_fwd;
      j["ms_bwd"] = r.ms_bwd;
      j["ms_fwd_bwd"] = r.ms_fwd_bwd;
      j["peak_bytes"] = r.peak_bytes;
      j["gflops"] = r.gflops;
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (r.skipped) {
    std::printf("%-6s %7d  skipped (would need %.1f GB; raise --plain-max-bytes)\n", r.impl.c_str(), r.seq,
                r.needed_bytes / 1e9);
  } else {
    std::printf("%-6s %7d %11.2f %11.2f %11.2f %10.1f %12s\n", r.impl.c_str(), r.seq, r.ms_fwd, r.ms_bwd,
                r.ms_fwd_bwd, r.gflops, plan::format_bytes(static_cast<double>(r.peak_bytes)).c_str());
  }
  std::fflush(stdout);
}

void add_bench_attention(CLI::App& bench, Run& run) {
  struct Args {
    AttentionBenchOptions opts;
    std::string plain_max = "8GiB";
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = bench.add_subcommand(
      "attention", "FlashAttention vs plain (T x T) attention on the CPU: causal forward+backward time and memory");
  cmd->add_option("--seq", a->opts.seqs, "Sequence lengths, e.g. 256,1024 (default 256,1024,4096,16384)")
      ->delimiter(',');
  cmd->add_option("--impl", a->opts.impls, "flash and/or plain (default both)")->delimiter(',');
  cmd->add_option("--batch", a->opts.batch, "Sequences per batch (default 1)");
  cmd->add_option("--heads", a->opts.heads, "Query heads (default 12)");
  cmd->add_option("--kv-heads", a->opts.kv_heads, "Key/value heads, dividing --heads (default: --heads)");
  cmd->add_option("--head-dim", a->opts.head_dim, "Head size (default 64)");
  cmd->add_option("--reps", a->opts.reps, "Timed repetitions; the median is reported (default 5)");
  cmd->add_option("--warmup", a->opts.warmup, "Untimed repetitions first (default 1)");
  cmd->add_option("--threads", a->opts.threads, "OpenMP/OpenBLAS threads (default: OMP_NUM_THREADS or all cores)");
  cmd->add_option("--plain-max-bytes", a->plain_max,
                  "Skip plain runs that would allocate more, e.g. 8GiB or 20GB (default 8GiB)");
  cmd->add_flag("--json", a->json, "One JSON object per line per (impl, seq)");
  cmd->callback([a, &run] {
    run = [a] {
      a->opts.plain_max_bytes =
          static_cast<size_t>(plan::parse_bytes("--plain-max-bytes", a->plain_max, 1e18));
      if (!a->json)
        std::printf("%-6s %7s %11s %11s %11s %10s %12s\n", "impl", "seq", "fwd ms", "bwd ms", "fwd+bwd ms",
                    "GFLOP/s", "peak memory");
      run_attention_bench(a->opts, [&](const AttentionBenchResult& r) { print_attention_result(r, a->json); });
      return 0;
    };
  });
}

}  // namespace

void register_bench(CLI::App& app, Run& run) {
  CLI::App* bench = app.add_subcommand("bench", "Measure kernels and training speed");
  bench->require_subcommand(1);
  add_bench_attention(*bench, run);
}

}  // namespace teddy::cli
