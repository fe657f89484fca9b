// `teddy bench <what>`: measurement subcommands. Each one is wired by its own
// add_bench_<what>(bench, run) function; register_bench calls them, so a sibling
// (`teddy bench train`, ...) is one more function and one more call.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/attention_bench.h"
#include "bench/train_bench.h"
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
  cmd->add_option("--backend", a->opts.backend, "Kernel backend whose attention the flash runs time: ref | cpu (default cpu)");
  cmd->add_option("--plain-max-bytes", a->plain_max,
                  "Skip plain runs that would allocate more, e.g. 8GiB or 20GB (default 8GiB)");
  cmd->add_flag("--json", a->json, "One JSON object per line per (impl, seq)");
  cmd->callback([a, &run] {
    run = [a] {
      a->opts.plain_max_bytes =
          static_cast<size_t>(plan::parse_bytes("--plain-max-bytes", a->plain_max, 1e18));
      bool header = a->json;  // the table header comes with the first row, after the options passed checks
      run_attention_bench(a->opts, [&](const AttentionBenchResult& r) {
        if (!header)
          std::printf("%-6s %7s %11s %11s %11s %10s %12s\n", "impl", "seq", "fwd ms", "bwd ms", "fwd+bwd ms",
                      "GFLOP/s", "peak memory");
        header = true;
        print_attention_result(r, a->json);
      });
      return 0;
    };
  });
}

void print_train_result(const TrainBenchResult& r, bool json) {
  if (json) {
    nlohmann::ordered_json j;
    j["workload"] = r.workload.name;
    j["model"] = r.workload.model;
    j["batch"] = r.workload.batch;
    j["seq"] = r.workload.seq;
    j["threads"] = r.threads;
    j["backend"] = r.backend;
    j["gemm_library"] = r.gemm_library;
    j["kernels"] = r.kernels;
    j["cpu"] = r.cpu_model;
    j["cpu_isa"] = r.cpu_isa;
    j["params"] = r.params;
    j["trainable_params"] = r.trainable_params;
    j["base_bytes"] = r.base_bytes;
    j["lora_r"] = r.lora_r;
    j["quantize"] = r.quantize;
    j["base_products"] = r.base_products;
    j["flops_per_token"] = r.flops_per_token;
    j["ms_per_step"] = r.ms_per_step;
    j["ms_min"] = r.ms_min;
    j["ms_max"] = r.ms_max;
    j["cpu_ms_per_step"] = r.cpu_ms_per_step;
    j["tokens_per_s"] = r.tokens_per_s;
    j["gflops_per_s"] = r.gflops_per_s;
    j["mfu"] = r.mfu;
    j["peak_gflops"] = r.peak_gflops;
    j["mfu_peak"] = r.mfu_peak;
    j["peak_fp32_gflops"] = r.peak_fp32_gflops;
    j["peak_fp32_isa"] = r.peak_fp32_isa;
    j["peak_bf16_gflops"] = r.peak_bf16_gflops;
    j["peak_bf16_isa"] = r.peak_bf16_isa;
    j["sgemm_gflops"] = r.sgemm_gflops;
    j["sgemm_gflops_before"] = r.sgemm_before;
    j["sgemm_gflops_after"] = r.sgemm_after;
    j["sgemm_gflops_min"] = r.sgemm_min;
    j["sgemm_gflops_max"] = r.sgemm_max;
    j["sgemm_samples"] = r.sgemm_samples;
    j["mfu_five_shape"] = r.mfu_five_shape;
    j["sgemm_gflops_five_shape"] = r.sgemm_five_shape;
    j["peak_rss_bytes"] = r.peak_rss_bytes;
    j["param_bytes"] = r.param_bytes;
    j["grad_bytes"] = r.grad_bytes;
    j["optimizer_bytes"] = r.optimizer_bytes;
    j["activation_bytes"] = r.activation_bytes;
    j["saved_activation_bytes"] = r.saved_activation_bytes;
    j["recompute"] = r.recompute;
    j["precision"] = r.precision;
    j["weight_scratch_bytes"] = r.weight_scratch_bytes;
    if (r.precision == "fp16") j["skipped_steps"] = r.skipped_steps;
    if (!r.kernel_seconds.empty()) {
      j["gemm_ms"] = r.gemm_seconds * 1e3;
      j["other_ms"] = r.other_seconds * 1e3;
      for (const auto& [k, v] : r.kernel_seconds) j["kernel_ms"][k] = v * 1e3;
    }
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return;
  }
  std::printf("%-5s %-10s %3d %5d %3d %10.1f %10.0f %9.1f %6.1f%% %9.1f %6.1f%% %9.1f %12s\n", r.workload.name.c_str(),
              r.workload.model.c_str(), r.workload.batch, r.workload.seq, r.threads, r.ms_per_step, r.tokens_per_s,
              r.gflops_per_s, 100 * r.mfu, r.sgemm_gflops, 100 * r.mfu_peak, r.peak_gflops,
              plan::format_bytes(static_cast<double>(r.peak_rss_bytes)).c_str());
  std::printf("      CPU %s (%s); GEMMs: %s (backend %s); kernels %s\n", r.cpu_model.c_str(), r.cpu_isa.c_str(),
              r.gemm_library.c_str(), r.backend.c_str(), r.kernels.c_str());
  if (r.lora_r > 0)
    std::printf("      LoRA r %d over a %s base: the base's products in %s, the adapters' in fp32\n", r.lora_r,
                r.quantize == "none" ? "fp32" : r.quantize.c_str(), r.base_products.c_str());
  std::printf("      physical peak (measured at start): fp32 %.1f GFLOP/s (%s FMA loop), bf16 %s; MFU-peak against %s\n",
              r.peak_fp32_gflops, r.peak_fp32_isa.c_str(),
              r.peak_bf16_gflops > 0 ? (std::to_string(static_cast<int>(r.peak_bf16_gflops + 0.5)) + " GFLOP/s (vdpbf16ps loop)").c_str()
                                     : "not native",
              r.peak_gflops == r.peak_bf16_gflops && r.peak_bf16_gflops > 0 ? "bf16's (bf16 products)" : "fp32's (FMA loop)");
  std::printf("      memory: params %s, grads %s, AdamW %s, activations %s, of which saved by the layers %s "
              "(recompute %s, precision %s, backend %s)\n",
              plan::format_bytes(static_cast<double>(r.param_bytes)).c_str(),
              plan::format_bytes(static_cast<double>(r.grad_bytes)).c_str(),
              plan::format_bytes(static_cast<double>(r.optimizer_bytes)).c_str(),
              plan::format_bytes(static_cast<double>(r.activation_bytes)).c_str(),
              plan::format_bytes(static_cast<double>(r.saved_activation_bytes)).c_str(), r.recompute.c_str(),
              r.precision.c_str(), r.backend.c_str());
  if (r.weight_scratch_bytes)
    std::printf("      %s: %s %s (fp32 master weights kept)%s\n", r.precision.c_str(),
                r.backend == "onednn-bf16" && r.precision == "bf16"
                    ? "bf16 copy of the matmul weights (rewritten each forward, read by the GEMMs as is)"
                    : "rounded-weight scratch",
                plan::format_bytes(static_cast<double>(r.weight_scratch_bytes)).c_str(),
                r.precision == "fp16" ? (", " + std::to_string(r.skipped_steps) + " steps skipped by the loss scaler").c_str() : "");
  std::printf("      sgemm ceiling %.1f GFLOP/s (15 training shapes): median of %d samples, one before each timed "
              "step and one after the last (min %.1f, max %.1f); against the older 5-shape ceiling (%.1f) MFU "
              "%.1f%%\n",
              r.sgemm_gflops, r.sgemm_samples, r.sgemm_min, r.sgemm_max, r.sgemm_five_shape, 100 * r.mfu_five_shape);
  std::printf("      median step %.1f ms wall (min %.1f, max %.1f), %.1f ms CPU over all threads\n", r.ms_per_step,
              r.ms_min, r.ms_max, r.cpu_ms_per_step);
  if (!r.kernel_seconds.empty()) {
    const double step = r.gemm_seconds + r.other_seconds;
    std::printf("      where the time goes (one profiled step, %.1f ms): GEMM %.1f%%, everything else %.1f%%\n", step * 1e3,
                100 * r.gemm_seconds / step, 100 * r.other_seconds / step);
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [k, v] : r.kernel_seconds) rows.emplace_back(v, k);
    std::sort(rows.rbegin(), rows.rend());
    for (const auto& [v, k] : rows) std::printf("        %-28s %9.2f ms %5.1f%%\n", k.c_str(), v * 1e3, 100 * v / step);
  }
  std::fflush(stdout);
}

void add_bench_train(CLI::App& bench, Run& run) {
  struct Args {
    TrainBenchOptions opts;
    std::string model, workload;
    int batch = 4, seq = 64;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = bench.add_subcommand(
      "train", "Time full training steps (forward, backward, AdamW): ms/step, tokens/s, GFLOP/s, MFU vs the measured sgemm "
              "ceiling and vs the measured physical peak");
  cmd->add_option("--model", a->model, "Preset to time (default: the standard workloads W1, W1b, W2)");
  cmd->add_option("--workload", a->workload, "Only this standard workload (W1, W1b or W2)")
      ->check(CLI::IsMember({"W1", "W1b", "W2"}))
      ->excludes("--model");
  cmd->add_option("--batch", a->batch, "Micro-batch with --model (default 4)")->check(CLI::PositiveNumber);
  cmd->add_option("--seq", a->seq, "Sequence length with --model (default 64)")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->opts.steps, "Timed steps; the median is reported (default 5)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->opts.warmup, "Untimed steps first (default 2)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", a->opts.threads, "OpenMP/OpenBLAS threads (default 2)")->check(CLI::PositiveNumber);
  cmd->add_flag("!--no-profile", a->opts.profile, "Skip the per-kernel breakdown step");
  cmd->add_option("--recompute", a->opts.recompute, "Activation recomputation: none | attention | block (default none)");
  cmd->add_option("--precision", a->opts.precision, "Training precision: fp32 | bf16 | fp16 (default fp32)");
  cmd->add_option("--backend", a->opts.backend,
                  "Kernel backend the step runs on: ref | cpu | onednn | onednn-bf16 (default cpu)");
  cmd->add_option("--gemm", a->opts.gemm,
                  "GEMM library instead of --backend: openblas | onednn | auto (as [train] gemm: with --precision bf16, "
                  "onednn computes bf16 products where the CPU has AVX512_BF16/AMX)")
      ->check(CLI::IsMember({"openblas", "onednn", "auto"}))
      ->excludes("--backend");
  cmd->add_option("--lora", a->opts.lora_r, "LoRA rank: train adapters on every linear over a frozen base (default 0: full)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--quantize", a->opts.quantize, "With --lora: the frozen base, none (fp32) | bf16 | nf4 (QLoRA: NF4 linears, bf16 embedding and head)")
      ->check(CLI::IsMember({"none", "bf16", "nf4"}));
  cmd->add_option("--lora-compute", a->opts.lora_compute,
                  "With --lora and --gemm: the frozen base's products, auto | fp32 | bf16 (as lora.compute: auto is bf16 "
                  "for a bf16/NF4 base where the CPU has native bf16 and the library is oneDNN)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_flag("--json", a->json, "One JSON object per workload");
  cmd->footer("Standard workloads (fp32): W1 gpt2-124M B=4 T=64; W1b gpt2-124M B=4 T=256; W2 gpt2-d6 (6L/6H/384) B=8 T=256.\n"
              "FLOPs per token = 6*N + 12*L*C*T (N parameters, L layers, C width, T sequence). MFU: per timed step,\n"
              "achieved GFLOP/s over the sgemm ceiling sampled right before and right after that step (mean of the\n"
              "two); the median over steps is reported. MFU-peak: GFLOP/s over the physical peak measured at start\n"
              "(FMA loop on the widest ISA; for bf16 products the larger of it and the vdpbf16ps loop; AMX not probed).");
  cmd->callback([a, &run] {
    run = [a] {
      if (!a->model.empty()) a->opts.workloads = {{"custom", a->model, a->batch, a->seq}};
      for (const auto& w : standard_train_workloads())
        if (w.name == a->workload) a->opts.workloads = {w};
      if (!a->json) {
        std::printf("FLOPs per token = 6*N + 12*L*C*T; MFU: median over timed steps of the step's GFLOP/s over the "
                    "sgemm ceiling sampled just before and just after it (their mean)\n");
        std::printf("%-5s %-10s %3s %5s %3s %10s %10s %9s %7s %9s %7s %9s %12s\n", "name", "model", "B", "T", "thr",
                    "ms/step", "tokens/s", "GFLOP/s", "MFU", "sgemm", "MFUpeak", "peak", "peak RSS");
      }
      for (const auto& r : run_train_bench(a->opts)) print_train_result(r, a->json);
      return 0;
    };
  });
}

}  // namespace

void register_bench(CLI::App& app, Run& run) {
  CLI::App* bench = app.add_subcommand("bench", "Measure kernels and training speed");
  bench->require_subcommand(1);
  add_bench_attention(*bench, run);
  add_bench_train(*bench, run);
}

}  // namespace teddy::cli
