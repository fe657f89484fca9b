#pragma once
// The library's entry for `teddy pretrain` and `teddy sft`: from a validated config
// and the world it runs in (dist::World: one process, or every rank of an mpirun /
// srun job), it builds the layout ([dist], validated against the job), the task and
// the step engine (Pretrainer / SftTrainer over the one Trainer) and runs them. It
// reports through the event callback and throws teddy::Error on failure, never
// printing or exiting: the CLI renders progress and maps errors to exit codes (and,
// under mpirun, ends the whole job with World::abort so no rank waits forever).
#include <cstdint>
#include <functional>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/distributed/world.h"
#include "teddy/train/pretrainer.h"
#include "teddy/train/sft_trainer.h"

namespace teddy {

struct JobOptions {
  Resume resume = Resume::no;
  // A fresh pretraining run (no --resume) refuses a run.dir that holds checkpoints,
  // so an earlier run is never mixed with or silently deleted; overwrite deletes them.
  bool overwrite = false;
  int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps, as if interrupted
  std::function<double(int threads)> peak_probe;  // the MFU denominator when run.peak_gflops is 0
};

// Every rank of the world calls these.
void run_pretrain_job(dist::World& world, PretrainConfig cfg, const JobOptions& opts,
                      const std::function<void(const PretrainEvent&)>& on_event);
void run_sft_job(dist::World& world, SftConfig cfg, const JobOptions& opts,
                 const std::function<void(const SftEvent&)>& on_event);

}  // namespace teddy
