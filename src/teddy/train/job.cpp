#include "teddy/train/job.h"

#include <filesystem>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/io/run_lock.h"

namespace teddy {

void run_pretrain_job(dist::World& world, PretrainConfig cfg, const JobOptions& opts,
                      const std::function<void(const PretrainEvent&)>& on_event) {
  // One writer per run.dir, taken before --overwrite may delete anything (the Trainer
  // shares it; a refusal on rank 0 ends the job through run_on_world).
  const auto lock = world.rank() == 0 ? RunLock::acquire(cfg.run_dir) : nullptr;
  // A fresh run never mixes with (or silently deletes) an earlier run's checkpoints.
  if (opts.resume == Resume::no) {
    const std::vector<std::string> existing = list_checkpoints(cfg.run_dir);
    world.barrier();  // every rank has looked before rank 0 may delete
    if (!existing.empty()) {
      if (!opts.overwrite)
        throw Error(cfg.run_dir + ": holds checkpoints of an earlier run (newest " + existing.front() +
                    "); pass --resume to continue it, --overwrite to delete them and start over, or set another run.dir");
      if (world.rank() == 0) std::filesystem::remove_all(std::filesystem::path(cfg.run_dir) / "checkpoints");
      world.barrier();
    }
  }
  Pretrainer trainer(std::move(cfg), opts.resume, world.comm());
  if (opts.peak_probe) trainer.set_peak_probe(opts.peak_probe);
  trainer.run(on_event, opts.stop_after);
}

void run_sft_job(dist::World& world, SftConfig cfg, const JobOptions& opts,
                 const std::function<void(const SftEvent&)>& on_event) {
  SftTrainer trainer(std::move(cfg), opts.resume, world.comm());
  if (opts.peak_probe) trainer.set_peak_probe(opts.peak_probe);
  trainer.run(on_event, opts.stop_after);
}

}  // namespace teddy
