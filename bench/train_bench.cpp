#include "bench/train_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <ctime>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/core/profiler.h"
#include "bench/peak_flops.h"
#include "bench/sgemm_ceiling.h"
#include "teddy/core/cpu_info.h"
#include "teddy/kernels/cpu_variant.h"
#include "teddy/kernels/backend.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/optim/grad_clip.h"
#include "teddy/train/optim/loss_scaler.h"
#include "teddy/distributed/zero_trainer.h"

namespace teddy {

std::vector<TrainBenchWorkload> standard_train_workloads() {
  return {{"W1", "gpt2-124M", 4, 64}, {"W1b", "gpt2-124M", 4, 256}, {"W2", "gpt2-d6", 8, 256}};
}

namespace {

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

template <class F>
void timed_step(Profiler& p, const char* name, F&& f) {
  ProfileScope scope(&p, name);
  f();
}

TrainBenchResult run_one(const TrainBenchWorkload& w, const TrainBenchOptions& o) {
  if (w.batch < 1 || w.seq < 1) throw ConfigError("bench train: --batch and --seq must be >= 1");
  ModelConfig cfg = ModelConfig::preset(w.model);
  if (w.seq > cfg.max_seq_len)
    throw ConfigError("bench train: --seq " + std::to_string(w.seq) + " exceeds the model's max_seq_len " +
                      std::to_string(cfg.max_seq_len));
  TrainBenchResult r;
  r.workload = w;
  r.threads = o.threads;
  const Precision precision = precision_from_name(o.precision, "bench train: --precision");
  if (o.lora_compute != "auto" && (o.lora_r <= 0 || o.gemm.empty()))
    throw ConfigError("bench train: --lora-compute needs --lora R and --gemm (with --backend the products are the backend's)");
  const kernels::Backend& kb =
      o.gemm.empty() ? kernels::backend(o.backend)
      : o.lora_r > 0 ? kernels::lora_gemm_backend(kernels::gemm_from_name(o.gemm, "bench train: --gemm"),
                                                  precision_dtype(precision), o.lora_compute, o.quantize != "none",
                                                  "bench train: --lora-compute")
                     : kernels::gemm_backend(kernels::gemm_from_name(o.gemm, "bench train: --gemm"), precision_dtype(precision));
  r.backend = kb.name;
  r.gemm_library = kernels::gemm_description(kb);
  // Every backend but ref runs the cpu backend's hand-written kernels (onednn's tables
  // are cpu's with the linears replaced).
  r.kernels = kb.name == std::string_view("ref") ? "ref" : std::string(kernels::cpu_variant().isa);
  {
    const CpuInfo ci = cpu_info();
    r.cpu_model = ci.model;
    for (const auto& f : ci.isa) r.cpu_isa += (r.cpu_isa.empty() ? "" : " ") + f;
  }
  // The physical peak, before any allocation (cached per process: the first workload pays).
  const PeakFlops& peak = measure_peak_flops(o.threads);
  r.peak_fp32_gflops = peak.fp32_gflops;
  r.peak_bf16_gflops = peak.bf16_gflops;
  r.peak_fp32_isa = peak.fp32_isa;
  r.peak_bf16_isa = peak.bf16_isa;
  r.peak_gflops = peak_gflops_for(peak, kb.gemm_inputs == DType::bf16);
  reset_peak_rss();

  const Context ctx{.backend = &kb};
  // With LoRA the base is built straight into its storage (fp32, bf16 or NF4) from the
  // seeded initialisation, a chunk of rows at a time, as a quantized checkpoint would
  // load: no fp32 copy of the base is ever held, and the peak counts everything.
  auto build = [&]() -> Model {
    if (o.lora_r <= 0) {
      if (o.quantize != "none")
        throw ConfigError("bench train: --quantize needs --lora R (the base is frozen only under LoRA)");
      Model m(cfg, ctx);
      m.init_weights(1234);
      return m;
    }
    LoraConfig l;
    l.r = o.lora_r;
    l.alpha = 2.0f * static_cast<float>(o.lora_r);
    l.quantize = o.quantize;
    return Model::with_lora(cfg, l, 1, Model::init_source(cfg, 1234), ctx);
  };
  Model model = build();
  r.lora_r = o.lora_r;
  r.quantize = o.lora_r > 0 ? o.quantize : "none";
  r.base_products = kb.gemm_inputs == DType::bf16 ? "bf16" : "fp32";
  AdamW opt(model.layout(), AdamWConfig{}, model.context());
  model.set_recompute(recompute_from_name(o.recompute));
  model.set_precision(precision);
  LossScaler scaler;  // used in fp16 only
  model.reserve_activations(w.batch, w.seq);
  // The step every run takes: the engine at stage 0 over a world of one.
  dist::SelfCommunicator one;
  dist::ZeroTrainer engine(model, opt, one);
  if (precision == Precision::fp16) engine.set_loss_scaler(&scaler);

  // Random tokens: the step's cost does not depend on the data.
  const size_t n = static_cast<size_t>(w.batch) * w.seq;
  std::vector<int32_t> tokens(n), targets(n);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> dist(0, cfg.vocab_size - 1);
  for (size_t i = 0; i < n; ++i) { tokens[i] = dist(rng); targets[i] = dist(rng); }
  Batch b;
  b.tokens = tokens.data();
  b.targets = targets.data();
  b.B = w.batch;
  b.T = w.seq;
  const std::span<const Batch> micro(&b, 1);

  // The ceiling is sampled right before every timed step and once after the last (each
  // sample o.sgemm_seconds long), and each step's MFU is its rate over the mean of the
  // samples around it: on a shared VM the machine's speed drifts by ±10% within
  // a minute, and a ceiling taken at another moment would fold that drift into the MFU.
  // The reported MFU is the median of the per-step figures. The probe's operands are
  // allocated after the first step, once the peak RSS of the model alone is read.
  std::optional<SgemmCeilingProbe> probe;
  // ceilings[k]: the sample before timed step k (empty: none); then the one after the last.
  std::vector<std::optional<SgemmCeiling>> ceilings;
  std::vector<double> times, cpu_times;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    if (i >= o.warmup) ceilings.push_back(probe ? std::optional(probe->measure(o.sgemm_seconds)) : std::nullopt);
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    engine.step(micro, 1e-4f, 1.0f);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= o.warmup) {
      times.push_back(dt);
      cpu_times.push_back(process_cpu_seconds() - c0);
    }
    if (i == 0) {
      r.peak_rss_bytes = peak_rss_bytes();
      probe.emplace(o.threads);
    }
  }
  ceilings.push_back(probe->measure(o.sgemm_seconds));
  r.params = model.base_layout().count();
  r.trainable_params = model.layout().count();
  r.base_bytes = model.base_bytes();
  if (model.lora()) {
    const ParamLayout full = make_param_layout(cfg);
    r.params = full.count();
    r.flops_per_token = 4.0 * static_cast<double>(r.params) + 6.0 * static_cast<double>(r.trainable_params) +
                        12.0 * cfg.n_layer * cfg.d_model * static_cast<double>(w.seq);
  } else {
    r.flops_per_token = 6.0 * static_cast<double>(r.params) + 12.0 * cfg.n_layer * cfg.d_model * static_cast<double>(w.seq);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // Per step: achieved GFLOP/s over the mean of the samples around it.
  auto step_mfu = [&](double SgemmCeiling::*field) {
    std::vector<double> mfu;
    for (size_t k = 0; k < times.size(); ++k) {
      const double after = (*ceilings[k + 1]).*field;
      const double ceiling = ceilings[k] ? 0.5 * ((*ceilings[k]).*field + after) : after;
      mfu.push_back(static_cast<double>(n) / times[k] * r.flops_per_token / 1e9 / ceiling);
    }
    return median(mfu);
  };
  r.mfu = step_mfu(&SgemmCeiling::gflops);
  r.mfu_five_shape = step_mfu(&SgemmCeiling::five_shape_gflops);
  std::vector<double> samples, five;
  for (const auto& c : ceilings)
    if (c) {
      samples.push_back(c->gflops);
      five.push_back(c->five_shape_gflops);
    }
  r.sgemm_samples = static_cast<int>(samples.size());
  r.sgemm_before = samples.front();
  r.sgemm_after = samples.back();
  r.sgemm_gflops = median(samples);
  r.sgemm_min = *std::min_element(samples.begin(), samples.end());
  r.sgemm_max = *std::max_element(samples.begin(), samples.end());
  r.sgemm_five_shape = median(five);
  r.cpu_ms_per_step = median(cpu_times) * 1e3;
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  r.ms_per_step = med * 1e3;
  r.ms_min = times.front() * 1e3;
  r.ms_max = times.back() * 1e3;
  r.tokens_per_s = static_cast<double>(n) / med;
  r.gflops_per_s = r.tokens_per_s * r.flops_per_token / 1e9;
  r.mfu_peak = r.peak_gflops > 0 ? r.gflops_per_s / r.peak_gflops : 0.0;
  r.param_bytes = model.param_bytes();
  r.grad_bytes = model.grad_bytes();
  r.optimizer_bytes = 2 * opt.size() * sizeof(float);
  r.activation_bytes = model.activation_bytes();
  r.saved_activation_bytes = model.saved_activation_bytes();
  r.recompute = o.recompute;
  r.precision = o.precision;
  r.weight_scratch_bytes = model.weight_scratch_bytes();
  r.skipped_steps = scaler.skipped();

  if (o.profile) {
    Profiler prof;
    model.set_profiler(&prof);
    // The engine's step in pieces, each timed, so the optimizer side is attributed too.
    const auto t0 = std::chrono::steady_clock::now();
    {
      // every target is valid here; fp16 runs with the scaler's current scale
      const float scale = precision == Precision::fp16 ? scaler.scale() : 1.0f;
      const float dloss = scale / static_cast<float>(n);
      model.forward_backward(b, dloss, kernels::Grad::set);  // as the engine at stage 0: no separate zero_grad
      double norm = 0;
      timed_step(prof, "grad_norm", [&] { norm = grad_norm(model.grads(), model.flat_size(), model.context()); });
      if (std::isfinite(norm))  // fp16 overflow: the scaler would skip this step
        timed_step(prof, "adamw_update", [&] { opt.step(model.params(), model.grads(), 1e-4f, clip_scale(norm / scale, 1.0f) / scale); });
    }
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    model.set_profiler(nullptr);
    double accounted = 0;
    for (const auto& [name, e] : prof.entries()) {
      r.kernel_seconds[name] = e.seconds;
      accounted += e.seconds;
      if (e.flops > 0) r.gemm_seconds += e.seconds;
    }
    r.kernel_seconds["(unattributed)"] = std::max(0.0, step_s - accounted);
    r.other_seconds = step_s - r.gemm_seconds;
  }
  return r;
}

}  // namespace

std::vector<TrainBenchResult> run_train_bench(const TrainBenchOptions& opts) {
  if (opts.threads < 1) throw ConfigError("bench train: --threads must be >= 1");
  if (opts.steps < 1 || opts.warmup < 0) throw ConfigError("bench train: --steps must be >= 1 and --warmup >= 0");
  recompute_from_name(opts.recompute);  // a bad mode fails before the sgemm measurement
  precision_from_name(opts.precision, "bench train: --precision");
  if (opts.gemm.empty())
    kernels::backend(opts.backend);  // an unknown backend fails here too
  else
    kernels::gemm_from_name(opts.gemm, "bench train: --gemm");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(opts.threads);
  std::vector<TrainBenchResult> out;
  const auto workloads = opts.workloads.empty() ? standard_train_workloads() : opts.workloads;
  for (const auto& w : workloads) out.push_back(run_one(w, opts));
  omp_set_num_threads(saved);
  return out;
}

}  // namespace teddy
