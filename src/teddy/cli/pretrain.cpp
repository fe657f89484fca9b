// `teddy pretrain`: next-token pretraining on a prepared dataset.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak_flops.h"
#include "teddy/cli/commands.h"
#include "teddy/cli/job.h"
#include "teddy/core/error.h"
#include "teddy/core/stop_signal.h"
#include "teddy/eval/training_eval.h"

namespace teddy::cli {

void register_pretrain(CLI::App& app, Run& run) {
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    std::string resume;  // "" (no --resume), "auto" or "require"
    bool overwrite = false;
    bool no_memory_check = false;
    std::string gemm;
    ProgressOptions progress;
    int64_t stop_after = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("pretrain", "Pretrain a model by next-token prediction on a prepared dataset");
  sub->add_option("--config,-c", o->config, "TOML run config (see configs/pretrain/*.toml); defaults apply to absent keys");
  sub->add_option("overrides", o->overrides, "Overrides as section.key=value, e.g. train.steps=100 optim.lr=3e-4");
  sub->add_flag("--resume{auto}", o->resume,
                "Continue from the newest intact checkpoint in run.dir; with none there yet, start from scratch "
                "(so a requeued job can always pass it). --resume=require fails instead");
  sub->add_flag("--overwrite", o->overwrite, "Start a fresh run in a run.dir that holds checkpoints (deletes them)")->excludes("--resume");
  sub->add_option("--stop-after", o->stop_after, "Stop (with a checkpoint) after this many steps, as if interrupted; resume later with --resume");
  sub->add_option("--gemm", o->gemm,
                  "GEMM library of the linears: openblas | onednn | auto (train.gemm; default auto: bf16 products on "
                  "oneDNN under precision bf16 where the CPU has AVX512_BF16/AMX; fp32 on oneDNN where OpenBLAS lacks "
                  "AVX-512 kernels for an AVX-512 CPU; else OpenBLAS)")
      ->check(CLI::IsMember({"openblas", "onednn", "auto"}));
  sub->add_flag("--no-memory-check", o->no_memory_check,
                "Start even when the planned memory exceeds what this process may use (run.memory_check = false)");
  add_progress_options(sub, o->progress);
  sub->footer(
      "Config sections and keys: [model] preset family n_layer n_head n_kv_head d_model d_ff max_seq_len\n"
      "  [data] dataset mix   [train] micro_batch seq_len grad_accum steps tokens seed threads recompute\n"
      "    precision (fp32|bf16|fp16) loss_scale loss_scale_growth_interval (fp16) gemm (openblas|onednn|auto)\n"
      "  [optim] lr min_lr_ratio warmup_steps weight_decay beta1 beta2 eps grad_clip\n"
      "  [eval] interval batches task_interval, [eval.<task>] (mmlu arc_challenge gsm8k gsm8k_cot humaneval perplexity)\n"
      "    data shots limit fewshot batch_size max_tokens samples_per_task temperature top_p seed timeout memory_mb\n"
      "    text_field: benchmark tasks scored every task_interval steps and at the end (docs/EVAL.md)\n"
      "  [checkpoint] interval keep   [run] dir peak_gflops save_on\n"
      "  [dist] zero (0-3) dp (0: all ranks) timeout_s overlap (used under mpirun / srun: data parallel over all ranks, see docs/DISTRIBUTED.md)\n"
      "  [lora] r alpha dropout targets rslora quantize compute (any key trains LoRA adapters over a frozen base, docs/LORA.md)\n"
      "Stop signals: SIGTERM, SIGINT, SIGUSR1 ([run] save_on) end the run after the current step with a checkpoint\n"
      "  of it and exit code 75 (continue with --resume); a second one ends the process at once (the previous\n"
      "  checkpoint stays intact). Under mpirun send SIGUSR1 to mpirun (it forwards it; SIGTERM makes mpirun\n"
      "  kill the job). docs/CLUSTER.md");
  sub->callback([o, &run] {
    run = [o] {
      if (o->stop_after < 0)
        throw ConfigError("--stop-after: expected a number of steps >= 1 (got " + std::to_string(o->stop_after) + ")");
      const Resume resume = resume_from_flag(o->resume);  // a bad --resume=X first
      if (o->no_memory_check) o->overrides.push_back("run.memory_check=false");
      if (!o->gemm.empty()) o->overrides.push_back("train.gemm=" + o->gemm);
      PretrainConfig cfg = o->config.empty() ? PretrainConfig::parse("", "<defaults>", o->overrides)
                                             : PretrainConfig::load(o->config, o->overrides);
      JobOptions jo;
      jo.resume = resume;
      jo.overwrite = o->overwrite;
      jo.stop_after = o->stop_after;
      if (!cfg.eval_tasks.empty()) jo.task_evaluator = make_task_evaluator(cfg.eval_tasks, cfg.run_dir);
      // MFU against the physical peak measured at start (bench/peak_flops.h): for bf16
      // products the larger of the bf16 dot-product and FMA loops', else the FMA loop's.
      jo.peak_probe = [bf16 = cfg.gemm_backend().gemm_inputs == DType::bf16](int threads) {
        return peak_gflops_for(measure_peak_flops(threads), bf16);
      };
      // Validates, builds the world (every rank of an mpirun / srun job: data parallel,
      // [dist]) and the engine, and trains; the view draws rank 0's progress.
      TrainJobView view(o->progress, "tokens", true);
      install_stop_handlers(cfg.save_on_signals());  // [run] save_on: stop at the next step with a checkpoint
      const TrainResult r = run_pretrain_job(std::move(cfg), jo, view);
      // Every rank agreed on the stop (Trainer::run), so every rank exits 75.
      return r.stop_signal ? kExitStoppedBySignal : 0;
    };
  });
}

}  // namespace teddy::cli
