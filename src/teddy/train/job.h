#pragma once
// The library's entry for `teddy pretrain` and `teddy sft`: one call per command
// that every process of the job makes (one plain process, or each rank of an mpirun
// / srun job). From a parsed config it
//   - validates the config (before anything else is looked at: no MPI, no run.dir),
//   - builds the world it runs in (dist::World: MPI under a launcher, with the
//     [dist] timeout_s watchdog; else one process),
//   - locks run.dir (rank 0; io/run_lock.h: one writer per run.dir, a second is
//     refused naming the holder) before anything there is deleted,
//   - refuses a fresh run in a run.dir that holds an earlier run's checkpoints, or
//     deletes them with overwrite,
//   - (sft, model.init = hf:DIR) imports the Hugging Face model once into
//     run.dir/hf_base (rank 0; the other ranks wait, then reuse it),
//   - builds the layout ([dist], validated against the job), the task and the step
//     engine (Pretrainer / SftTrainer over the one Trainer) and runs them.
// It prints nothing and never exits on its own account: it reports through a
// JobObserver the caller implements (the CLI renders progress and maps failures to
// exit codes).
//
// Errors. In one process (and a job of one rank) they are thrown, teddy::Error and
// its subclasses (ConfigError, FormatError) as everywhere in the library, and the
// call returns nothing else. Config errors are thrown on every rank before the world
// exists (no rank is in a collective yet). In a job of several ranks an error after
// that cannot be thrown to the caller: the other ranks may be blocked in a
// collective, waiting for this one, and MPI cannot be finalised under them. So the
// failing rank reports it (JobObserver::on_rank_failure, with the exception) and the
// job ends every rank with World::abort and the exit code the observer returns. The
// same happens when the watchdog finds a collective that waited longer than
// [dist] timeout_s (a hung peer): on_rank_failure gets the HungCall, on the
// watchdog thread.
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/distributed/watchdog.h"
#include "teddy/train/pretrainer.h"
#include "teddy/train/sft_trainer.h"

namespace teddy {

struct JobOptions {
  Resume resume = Resume::no;
  // A fresh run (no --resume) refuses a run.dir that holds checkpoints, so an
  // earlier run is never mixed with or silently deleted; overwrite deletes them.
  bool overwrite = false;
  int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps, as if interrupted
  std::function<double(int threads)> peak_probe;  // the MFU denominator when run.peak_gflops is 0
  // Scores the config's [eval.<task>] tasks (the CLI's eval/training_eval.h); needed
  // when the config has any.
  TaskEvaluator task_evaluator;
};

// Why a rank of a job of several ranks cannot go on.
struct RankFailure {
  int rank = 0, size = 1;
  std::string what;                    // the error's message, or the hung call's (HungCall::message)
  std::exception_ptr error;            // the exception this rank threw; null for a hang
  std::optional<dist::HungCall> hang;  // set when the watchdog found a hung collective
};

class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // The job's progress: rank 0's events (start report, steps, validation,
  // checkpoints, summary); the other ranks' observers get none.
  virtual void on_event(const TrainEvent& e) = 0;
  // A line about what the job did before training, on rank 0 (e.g. "model.init
  // hf:DIR: imported into RUN/hf_base"), before the start event.
  virtual void on_note(const std::string&) {}
  // This rank failed in a job of several ranks (see the header comment): report it.
  // Returns the exit code every rank of the job then ends with (World::abort). For a
  // hang it is called on the watchdog thread while this rank's main thread is still
  // blocked in the call. The default reports nothing and returns 1 for an error,
  // dist::kHangExitCode (3) for a hang.
  virtual int on_rank_failure(const RankFailure& f) { return f.hang ? dist::kHangExitCode : 1; }
};

// Returns how the run ended on this rank (Trainer::run's TrainResult): every rank
// of a job gets the same stop_signal (the ranks agree on it after each step), so a
// stop signal ([run] save_on) that ended the run with a checkpoint is seen by every
// rank's caller (the CLI exits 75 on each).
TrainResult run_pretrain_job(PretrainConfig cfg, const JobOptions& opts, JobObserver& observer);
TrainResult run_sft_job(SftConfig cfg, const JobOptions& opts, JobObserver& observer);

}  // namespace teddy
