#pragma once
// The one training loop behind `teddy pretrain` and `teddy sft`. A task says where
// the batches come from and what the run reports (PretrainTask over the prepared
// dataset's loader, SftTask over chat examples); the Trainer does the rest, the
// same way for both and for any number of ranks:
//
//   start     run.dir locked (rank 0; io/run_lock.h), temporary checkpoints of dead writers removed (rank 0),
//             --resume (Resume) from the newest checkpoint no rank objects to,
//             metrics.jsonl truncated to the resumed step or started fresh, the
//             task's run files (rank 0), the start report
//   each step the task's micro-batches for this rank (its slice of the global
//             batch), lr from warmup + cosine, one step of the engine
//             (dist::ZeroTrainer: a world of one in one process), metrics.jsonl
//             (rank 0), a progress event; validation every eval.interval steps and
//             at the end (each rank its share, summed); the [eval.<task>] benchmark
//             tasks every eval.task_interval steps and at the end (rank 0 scores a
//             snapshot of the weights while the others wait; TaskEvaluator); a checkpoint every
//             checkpoint.interval steps and at the end (each rank its shard)
//   end       the summary (the engine's per-rank communication under mpirun)
//
// Determinism: the loaders are pure functions of (seed, step, global row) and the
// kernels reduce in a fixed order for a thread count, so a resumed run reproduces
// the uninterrupted one bit for bit. The library reports through the event callback
// and never prints; every rank calls run() (collectives inside), rank 0's events
// are the job's.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/distributed/communicator.h"
#include "teddy/distributed/parallel_layout.h"
#include "teddy/distributed/zero_trainer.h"
#include "teddy/io/run_lock.h"
#include "teddy/model/model.h"
#include "teddy/train/common_config.h"
#include "teddy/train/optim/loss_scaler.h"

namespace teddy {

struct TrainEvent {
  enum class Kind { start, step, eval, task_eval, checkpoint, end };
  Kind kind = Kind::step;
  int64_t step = 0;          // optimizer steps completed
  int64_t total_steps = 0;
  double loss = 0;           // step: training loss; eval/end: validation loss
  double lr = 0, grad_norm = 0;
  double tokens_per_s = 0, mfu = 0;
  double elapsed_s = 0, eta_s = 0;
  int64_t tokens_seen = 0;   // since step 0 (resumed runs included)
  // fp16 (step events): the loss scale the step ran with, whether it was skipped
  // (gradient overflow), and the steps skipped so far; loss_scale is 0 without a scaler.
  double loss_scale = 0;
  bool skipped = false;
  int64_t skipped_steps = 0;
  std::string text;          // start: resolved config and memory report; checkpoint: its path; end: summary
  // end: the stop signal that ended the run early at `step` (0: it ran to its end or
  // to stop_after) and the newest checkpoint written by this run ("" if none).
  int stop_signal = 0;
  std::string checkpoint;
  std::vector<std::pair<std::string, uint64_t>> tokens_per_source;
  // task_eval: one benchmark task's scores at `step` (lm-eval's metric names), its
  // sample count and the seconds it took (not counted in tokens/s).
  std::string eval_task;
  std::vector<std::pair<std::string, double>> eval_scores;
  int64_t eval_n = 0;
  double eval_s = 0;
};

// One benchmark task's scores on a snapshot of the weights (train/eval_task_config.h).
struct TaskScores {
  std::string task;
  int64_t n = 0;  // samples scored
  std::vector<std::pair<std::string, double>> metrics;  // lm-eval's names ("acc", "acc_stderr", ...), in order
  double seconds = 0;
};
// Scores `snapshot` (a plain fp32 model with the run's weights at `step`, LoRA folded
// in: what `teddy eval --checkpoint` of that step's checkpoint loads) on the run's
// [eval.<task>] tasks, in task-name order (the config's tables, which TOML keeps
// sorted). The CLI builds it from eval/
// (eval/training_eval.h): train/ does not depend on eval/.
using TaskEvaluator = std::function<std::vector<TaskScores>(Model& snapshot, int64_t step)>;

// The model `teddy eval` would load from a checkpoint of `m`: the same config and
// parameters in a fresh fp32 model on the default context (no layer hooks, no
// training modes), with LoRA adapters folded in (merge_lora).
Model eval_snapshot(const Model& m);

// What the loop knows that a task's start report and end summary print.
struct TrainReport {
  int world = 1;                // data-parallel ranks
  int threads = 1;
  double peak_gflops = 0;       // MFU denominator (0: none)
  bool peak_given = false;      // from run.peak_gflops (else measured)
  double flops_per_token = 0;   // 6N + 12LCT
  size_t optimizer_bytes = 0;   // the AdamW state this rank holds (the engine's)
  std::string engine_report;    // world > 1: the engine's layout and per-rank state lines
  std::string notes;            // "# ..." lines: stale temporaries removed, fresh start on --resume
  int64_t start_step = 0;       // 0, or the resumed checkpoint's step
  // End only.
  int64_t first_step = 0, step = 0;
  int64_t run_tokens = 0;       // tokens of the steps run here (global batch)
  double elapsed_s = 0;
  double last_val = 0;          // NaN when there was no validation
  double task_eval_s = 0;       // seconds spent on [eval.<task>] benchmark tasks (not in tokens/s)
  int task_evals = 0;           // evaluations of them (each over every task)
  const LossScaler* scaler = nullptr;  // fp16
  std::string engine_summary;   // world > 1: every rank's communication totals
};

// The end summary's line on the [eval.<task>] evaluations ("" without any): their
// count and time, which tokens/s leaves out.
std::string task_eval_summary(const TrainReport& r);

// Where a run's data comes from and what it reports. Every rank has its own task,
// built for its data-parallel slice.
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual Model& model() = 0;
  // Names the run in errors ("training", "SFT").
  virtual std::string name() const = 0;
  // Fills this rank's micro-batches of the next step (grad_accum of them; their
  // memory stays valid until the next call) and returns the tokens (row positions)
  // of the whole global batch, every rank's.
  virtual int64_t next_step(std::vector<Batch>& micro) = 0;
  // Validation: this rank's share of the loss (the trainer sums over ranks).
  virtual bool has_validation() const = 0;
  virtual bool validate_before_first_step() const = 0;
  virtual LossSum validate() = 0;
  // The data stream's position for a checkpoint, and back (info.state.step steps done).
  virtual std::string loader_state() const = 0;
  virtual void restore(const CheckpointInfo& info) = 0;
  virtual std::string run_config() const = 0;  // resolved TOML, as saved in config.toml
  // Rank 0 at the start: config.toml, the tokenizer, ... into run_dir.
  virtual void write_run_files(const std::string& run_dir) = 0;
  virtual std::string start_text(const TrainReport& r) = 0;
  virtual std::string end_text(const TrainReport& r) = 0;
  // Adds what the task knows to every event (pretraining: tokens per source).
  virtual void decorate(TrainEvent&) const {}
  // metrics.jsonl's step lines carry the step's loss tokens (SFT).
  virtual bool metrics_loss_tokens() const { return false; }
};

// How run() ended.
struct TrainResult {
  int64_t step = 0;         // optimizer steps completed
  int stop_signal = 0;      // a stop signal (core/stop_signal.h) ended it early; 0: it ran to its end / stop_after
  std::string checkpoint;   // the newest checkpoint this run wrote ("" if none)
};

// The run's settings beyond the common sections.
struct TrainerSettings {
  int64_t total_steps = 1;
  int seq_len = 1;     // for FLOPs per token
  uint64_t seed = 0;
  int threads = 1;     // set by the task (omp_set_num_threads)
  std::optional<LossScalerConfig> loss_scaling;  // fp16
};

class Trainer {
 public:
  // The task must be built for this rank's slice of `layout` (dp_rank, dp). comm:
  // the job's ranks (the layout is validated against it); nullptr is one process
  // (the trainer's own SelfCommunicator). The engine runs ZeRO stage layout.zero
  // over the ranks (one process: stage 0). Resumes as `resume` says (see Resume).
  Trainer(std::unique_ptr<TrainTask> task, const CommonConfig& common, const TrainerSettings& settings,
          const dist::ParallelLayout& layout, dist::Communicator* comm, Resume resume);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to the configured total; with stop_after > 0, stops (with a checkpoint)
  // once that many steps are completed, as if interrupted there. After each step it
  // polls stop_requested() (core/stop_signal.h), agreed over the ranks by one small
  // all-reduce, so every rank stops after the same step: then it writes a checkpoint
  // of that step (no validation: a scheduler's grace time goes to the save) and
  // returns with result.stop_signal set.
  TrainResult run(const std::function<void(const TrainEvent&)>& on_event, int64_t stop_after = 0);
  // The MFU denominator when run.peak_gflops is 0: probe(threads), in GFLOP/s,
  // called once at the start of run() (the CLI passes the physical peak of
  // bench/peak_flops.h: fp32's, or bf16's for bf16 products; train/ does not measure). With neither, MFU reports 0.
  void set_peak_probe(std::function<double(int threads)> probe);
  // Runs the config's [eval.<task>] tasks (every rank sets one; only rank 0's is
  // called). A run with tasks and no evaluator is refused at the start of run().
  void set_task_evaluator(TaskEvaluator evaluator);

  TrainTask& task() { return *task_; }
  dist::ZeroTrainer& engine() { return *engine_; }
  int rank() const;   // in the job
  int world() const;  // data-parallel ranks
  int64_t step() const { return step_; }
  int64_t start_step() const { return start_step_; }
  const std::vector<double>& step_losses() const { return losses_; }  // training loss of each step run here
  // Validation loss over the task's validation batches, summed over the ranks (NaN: none).
  double validation_loss();

 private:
  // stop_requested() of any rank (the lowest signal number when they differ), the
  // same on every rank.
  int agreed_stop_signal();
  // Rank 0 scores a snapshot with the task evaluator; the other ranks wait for it
  // (wait_for_rank0). Every rank calls; the scores are rank 0's (empty elsewhere).
  std::vector<TaskScores> evaluate_tasks();
  // The ranks other than 0 wait in short test() calls on a non-blocking all-reduce
  // that rank 0 joins when done, so no communication call waits longer than a poll
  // and the watchdog ([dist] timeout_s) is not tripped by a long evaluation.
  void wait_for_rank0();

  std::shared_ptr<RunLock> lock_;  // rank 0: run.dir's lock, held for the Trainer's life
  std::unique_ptr<dist::Communicator> own_comm_;  // one process
  dist::Communicator* comm_ = nullptr;
  std::unique_ptr<TrainTask> task_;
  std::unique_ptr<dist::ZeroTrainer> engine_;  // after task_: its hooks go before the model does
  CommonConfig common_;
  TrainerSettings settings_;
  dist::ParallelLayout layout_;
  LrSchedule schedule_;
  int64_t step_ = 0, start_step_ = 0;
  int64_t tokens_ = 0;  // tokens (row positions) of the global batches so far
  std::vector<double> losses_;
  std::string metrics_path_;
  std::string notes_;
  std::function<double(int)> peak_probe_;
  TaskEvaluator task_evaluator_;
};

}  // namespace teddy
