#pragma once
// `teddy bench train`: times full training steps (forward, backward, AdamW with
// clipping) after warm-up, in the spirit of llama-bench, and reports the median
// step against the sgemm ceiling measured in the same run (mfu) and against the
// machine's physical peak measured at start (mfu_peak, bench/peak_flops.h).
#include <map>
#include <string>
#include <vector>

#include "teddy/model/config.h"

namespace teddy {

struct TrainBenchWorkload {
  std::string name;   // "W1", "W1b", "W2" or "custom"
  std::string model;  // preset name
  int batch = 4;
  int seq = 64;
};

struct TrainBenchOptions {
  std::vector<TrainBenchWorkload> workloads;  // empty: the three standard ones
  int threads = 2;
  int warmup = 2;
  int steps = 5;             // timed steps; the median is reported
  bool profile = true;       // per-kernel breakdown from one extra profiled step
  double sgemm_seconds = 1;  // time budget of one ceiling sample (one before each timed step, one after the last)
  std::string recompute = "none";  // activation recomputation: none | attention | block
  std::string precision = "fp32";  // fp32 | bf16 | fp16 (fp16 steps run the dynamic loss scaler)
  std::string backend = "cpu";     // the kernel backend the model and optimizer run on (kernels::backend)
  // When set, the GEMM library instead of `backend`: openblas | onednn | auto, with the
  // precision picking onednn-bf16 where bf16 is native (kernels::gemm_backend).
  std::string gemm;
  int lora_r = 0;                  // > 0: LoRA adapters of this rank on every linear (alpha = 2r), the base frozen
  std::string quantize = "none";   // with LoRA: the base's linears in none (fp32) | bf16 | nf4
  // With LoRA and `gemm`: the base's products, auto | fp32 | bf16 (lora.compute,
  // kernels::lora_gemm_backend). With `backend` they are that backend's (auto only).
  std::string lora_compute = "auto";
};

struct TrainBenchResult {
  TrainBenchWorkload workload;
  int threads = 0;
  std::string backend;  // the kernel backend the step ran on
  std::string gemm_library;  // kernels::gemm_description: the library, its ISA, fp32 or bf16 inputs
  std::string kernels;       // the hand-written kernels' variant (kernels/cpu_variant.h): avx2 | avx512 | native; ref
  std::string cpu_model;     // /proc/cpuinfo model name
  std::string cpu_isa;       // the vector ISA flags present (core/cpu_info.h)
  // The physical peak measured in the same process (bench/peak_flops.h): fp32 FMA loop
  // and vdpbf16ps loop; peak_gflops is the one for this run's products (bf16 where
  // the backend's GEMMs take bf16 inputs), mfu_peak = gflops_per_s / peak_gflops.
  double peak_fp32_gflops = 0, peak_bf16_gflops = 0, peak_gflops = 0, mfu_peak = 0;
  std::string peak_fp32_isa, peak_bf16_isa;
  size_t params = 0;           // the model's parameters (the base's, with LoRA)
  size_t trainable_params = 0; // what AdamW updates (the adapters, with LoRA)
  size_t base_bytes = 0;       // the frozen base's storage (LoRA) or the parameters' bytes
  int lora_r = 0;
  std::string quantize = "none";
  std::string base_products = "fp32";  // LoRA: what the frozen base's GEMMs take, fp32 | bf16 (the backend's gemm_inputs)
  double flops_per_token = 0;  // 6*N + 12*L*C*T (LoRA: 4*N_base + 6*N_adapters + 12*L*C*T, no base weight gradient)
  double ms_per_step = 0;      // median
  double ms_min = 0, ms_max = 0;
  double cpu_ms_per_step = 0;  // median process CPU time (all threads) per step: robust to a loaded machine
  double tokens_per_s = 0;
  double gflops_per_s = 0;
  double mfu = 0;              // median over timed steps of (step's GFLOP/s) / (mean of the ceilings around it)
  double sgemm_gflops = 0;     // median of the ceiling samples
  double sgemm_before = 0, sgemm_after = 0;  // the first and the last sample
  double sgemm_min = 0, sgemm_max = 0;
  int sgemm_samples = 0;
  // The same against the 5-shape ceiling used until 2026-11-30 (bench/sgemm_ceiling.h).
  double mfu_five_shape = 0, sgemm_five_shape = 0;
  size_t peak_rss_bytes = 0;
  size_t param_bytes = 0, grad_bytes = 0, optimizer_bytes = 0, activation_bytes = 0;
  std::string recompute;  // the mode the step ran with
  std::string precision;  // fp32 | bf16 | fp16
  size_t saved_activation_bytes = 0;  // of activation_bytes: what the layers keep for backward
  size_t weight_scratch_bytes = 0;  // 16-bit modes: the rounded-weight scratch
  int64_t skipped_steps = 0;        // fp16: timed or warmup steps the scaler skipped
  // Seconds per step by kernel (from the profiled step), and GEMM share of the step.
  std::map<std::string, double> kernel_seconds;
  double gemm_seconds = 0, other_seconds = 0;
};

std::vector<TrainBenchWorkload> standard_train_workloads();
std::vector<TrainBenchResult> run_train_bench(const TrainBenchOptions& opts);

}  // namespace teddy
