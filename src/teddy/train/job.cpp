#include "teddy/train/job.h"

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/distributed/world.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/hf_run.h"
#include "teddy/io/run_lock.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

// Builds the job's world (its watchdog reporting to the observer) and runs body(world)
// on this rank. One process: errors propagate. Several ranks: a failure is reported
// and ends every rank (job.h).
template <class Body>
void run_in_world(double timeout_s, JobObserver& observer, Body&& body) {
  std::atomic<dist::World*> current{nullptr};  // declared before `world`: outlives its watchdog
  const std::unique_ptr<dist::World> world =
      dist::World::from_environment(timeout_s, [&observer, &current](const dist::HungCall& h) {
        RankFailure f;
        f.rank = h.rank;
        f.size = h.size;
        f.what = h.message();
        f.hang = h;
        const int code = observer.on_rank_failure(f);
        if (dist::World* w = current.load()) w->abort(code, f.what);
        // Not reached once the world exists; before that, the communicator's default end.
      });
  current.store(world.get());
  try {
    body(*world);
  } catch (...) {
    if (world->size() == 1) throw;
    RankFailure f;
    f.rank = world->rank();
    f.size = world->size();
    f.error = std::current_exception();
    f.what = what_of(f.error);
    // One failed rank must not leave the others blocked in a collective.
    world->abort(observer.on_rank_failure(f), f.what);
  }
}

// One writer per run.dir (io/run_lock.h), taken by rank 0 before --overwrite may
// delete anything and held while the job trains (the Trainer shares it). A refusal
// is an error of rank 0, which ends the job like any other (run_in_world).
std::shared_ptr<RunLock> lock_run_dir(const dist::World& world, const std::string& run_dir) {
  return world.rank() == 0 ? RunLock::acquire(run_dir) : nullptr;
}

// A fresh run never mixes with (or silently deletes) an earlier run's checkpoints.
void start_fresh_or_refuse(dist::World& world, const std::string& run_dir, const JobOptions& opts) {
  if (opts.resume != Resume::no) return;
  const std::vector<std::string> existing = list_checkpoints(run_dir);
  world.barrier();  // every rank has looked before rank 0 may delete
  if (existing.empty()) return;
  if (!opts.overwrite)
    throw Error(run_dir + ": holds checkpoints of an earlier run (newest " + existing.front() +
                "); pass --resume to continue it, --overwrite to delete them and start over, or set another run.dir");
  if (world.rank() == 0) {
    std::error_code ec;
    fs::remove_all(fs::path(run_dir) / "checkpoints", ec);
    if (ec) throw Error(run_dir + "/checkpoints: cannot delete for --overwrite: " + ec.message());
  }
  world.barrier();
}

// Rank 0's events are the job's.
std::function<void(const TrainEvent&)> job_events(const dist::World& world, JobObserver& observer) {
  if (world.rank() != 0) return {};
  return [&observer](const TrainEvent& e) { observer.on_event(e); };
}

}  // namespace

TrainResult run_pretrain_job(PretrainConfig cfg, const JobOptions& opts, JobObserver& observer) {
  // A bad value first, before the world, run.dir and the dataset are looked at (at
  // one rank: the token budget's step count only shrinks with more ranks, so no rule
  // here is stricter than the Pretrainer's own check with the job's ranks).
  cfg.validate();
  TrainResult result;
  run_in_world(cfg.timeout_s, observer, [&](dist::World& world) {
    const auto lock = lock_run_dir(world, cfg.run_dir);
    start_fresh_or_refuse(world, cfg.run_dir, opts);
    Pretrainer trainer(std::move(cfg), opts.resume, world.comm());
    if (opts.peak_probe) trainer.set_peak_probe(opts.peak_probe);
    if (opts.task_evaluator) trainer.trainer().set_task_evaluator(opts.task_evaluator);
    result = trainer.run(job_events(world, observer), opts.stop_after);
  });
  return result;
}

TrainResult run_sft_job(SftConfig cfg, const JobOptions& opts, JobObserver& observer) {
  cfg.validate();  // a bad value first, before the world, the checkpoint and the data are looked at
  TrainResult result;
  run_in_world(cfg.timeout_s, observer, [&](dist::World& world) {
    const auto lock = lock_run_dir(world, cfg.run_dir);
    start_fresh_or_refuse(world, cfg.run_dir, opts);
    install_hf_bnb4_base_loader();  // a bitsandbytes 4-bit hf:DIR base trains on the file's NF4 codes
    if (const std::string hf_dir = hf_model_dir(cfg.init); !hf_dir.empty()) {
      // Rank 0 imports the Hugging Face model into run.dir (or reuses an earlier
      // import of it); the other ranks wait for it and then reuse it.
      const std::string into = (fs::path(cfg.run_dir) / "hf_base").string();
      bool reused = false;
      if (world.rank() == 0) cfg.init = import_hf_once(hf_dir, into, &reused);
      world.barrier();
      if (world.rank() != 0) cfg.init = import_hf_once(hf_dir, into);
      if (world.rank() == 0)
        observer.on_note("model.init hf:" + hf_dir + ": " + (reused ? "reusing the import in " : "imported into ") +
                         cfg.init);
    }
    const std::string run_dir = cfg.run_dir;
    SftTrainer trainer(std::move(cfg), opts.resume, world.comm());
    // An imported model's tokenizer_config, generation_config and token ids follow it
    // into the finetuned run, so its export publishes them again.
    if (world.rank() == 0)
      carry_hf_extras(trainer.data_report().init_checkpoint, run_dir, trainer.tokenizer(), trainer.chat_template());
    if (opts.peak_probe) trainer.set_peak_probe(opts.peak_probe);
    if (opts.task_evaluator) trainer.trainer().set_task_evaluator(opts.task_evaluator);
    result = trainer.run(job_events(world, observer), opts.stop_after);
  });
  return result;
}

}  // namespace teddy
