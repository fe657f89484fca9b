#pragma once
// The pretraining loop behind `teddy pretrain`: data loader over a prepared dataset
// and mixture, model, AdamW with warmup + cosine, clipping, gradient accumulation,
// periodic validation and checkpoints, a JSON-lines metrics file, exact resume.
// The library reports through a callback; the CLI draws the progress bar.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "teddy/train/checkpoint.h"
#include "teddy/train/data_parallel.h"
#include "teddy/train/pretrain_config.h"

namespace teddy {

struct PretrainEvent {
  enum class Kind { start, step, eval, checkpoint, end };
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
  std::vector<std::pair<std::string, uint64_t>> tokens_per_source;
};

struct PretrainMemory {
  size_t params = 0, grads = 0, optimizer = 0, activations = 0;
  size_t saved_activations = 0;  // of activations: what the layers keep for backward
  size_t weight_scratch = 0;  // bf16/fp16: the rounded matmul weights (one block or the head), fp32
};

class Pretrainer {
 public:
  // Loads the dataset and builds the model. With resume, continues from the newest
  // intact checkpoint in run_dir (and fails if the run config's model differs); see
  // Resume for a run_dir without checkpoints. The writer first removes temporary
  // checkpoint directories of dead writers (remove_stale_checkpoint_temps).
  // With `dp` (dist/ builds one under mpirun), each rank reads its slice of every
  // global batch, steps through dp, and only rank 0 writes run files; the global
  // batch is micro_batch x grad_accum x dp->world().
  Pretrainer(PretrainConfig cfg, Resume resume, std::shared_ptr<DataParallel> dp = nullptr);
  ~Pretrainer();

  // Trains to the configured total; with stop_after > 0, stops (with a checkpoint)
  // once that many steps are completed, as if interrupted there.
  void run(const std::function<void(const PretrainEvent&)>& on_event, int64_t stop_after = 0);
  // The MFU denominator when the config gives no run.peak_gflops: probe(threads), in
  // GFLOP/s, called once at the start of run() (the CLI passes the sgemm ceiling of
  // bench/sgemm_ceiling.h; train/ does not measure). With neither, MFU reports 0.
  void set_peak_probe(std::function<double(int threads)> probe);

  const PretrainConfig& config() const;
  const std::vector<double>& step_losses() const;  // training loss of each step run here
  PretrainMemory memory() const;
  int64_t start_step() const;  // 0, or the resumed checkpoint's step

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace teddy
