// `teddy pretrain`: next-token pretraining on a prepared dataset.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/sgemm_ceiling.h"
#include "teddy/cli/commands.h"
#include "teddy/cli/progress.h"
#include "teddy/core/error.h"
#include "teddy/distributed/world.h"
#include "teddy/train/job.h"

namespace teddy::cli {

void register_pretrain(CLI::App& app, Run& run) {
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    std::string resume;  // "" (no --resume), "auto" or "require"
    bool overwrite = false;
    int64_t print_every = 10;
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
  sub->add_option("--print-every", o->print_every, "When not on a terminal, print progress every N steps")->check(CLI::PositiveNumber);
  sub->footer(
      "Config sections and keys: [model] preset family n_layer n_head n_kv_head d_model d_ff max_seq_len\n"
      "  [data] dataset mix   [train] micro_batch seq_len grad_accum steps tokens seed threads recompute\n"
      "    precision (fp32|bf16|fp16) loss_scale loss_scale_growth_interval (fp16)\n"
      "  [optim] lr min_lr_ratio warmup_steps weight_decay beta1 beta2 eps grad_clip\n"
      "  [eval] interval batches   [checkpoint] interval keep   [run] dir peak_gflops\n"
      "  [dist] zero (0-3) dp (0: all ranks) timeout_s overlap (used under mpirun / srun: data parallel over all ranks, see docs/DISTRIBUTED.md)\n"
      "  [lora] r alpha dropout targets rslora quantize (any key trains LoRA adapters over a frozen base, docs/LORA.md)");
  sub->callback([o, &run] {
    run = [o] {
      const Resume resume = resume_from_flag(o->resume);  // a bad --resume=X first
      PretrainConfig cfg = o->config.empty() ? PretrainConfig::parse("", "<defaults>", o->overrides)
                                             : PretrainConfig::load(o->config, o->overrides);
      // A bad value first, before run.dir and the dataset are looked at (at one rank:
      // the token budget's step count only shrinks with more ranks, so no rule here is
      // stricter than the Pretrainer's own check with the job's ranks).
      cfg.validate();
      // Under mpirun / srun: data parallel over every rank of the job ([dist] zero).
      const std::unique_ptr<dist::World> world = dist::World::from_environment(cfg.timeout_s);
      JobOptions jo;
      jo.resume = resume;
      jo.overwrite = o->overwrite;
      jo.stop_after = o->stop_after;
      jo.peak_probe = [](int threads) { return measure_sgemm_gflops(threads, 0.5); };
      const int rank = world->rank();
      ProgressLine bar(stderr, o->print_every);
      return run_on_world(*world, [&] {
        run_pretrain_job(*world, std::move(cfg), jo, [&](const PretrainEvent& e) {
          if (rank == 0) print_train_event(e, bar, "tokens", true);  // rank 0 logs for the job
        });
      });
    };
  });
}

}  // namespace teddy::cli
