#pragma once
// `teddy pretrain`: the pretraining task (the prepared dataset's loader and mixture,
// a model from a preset, validation windows) run by the one training loop
// (trainer.h): AdamW with warmup + cosine, clipping, gradient accumulation,
// periodic validation and checkpoints, a JSON-lines metrics file, exact resume.
// Under mpirun / srun each rank reads its slice of every global batch and the step
// engine runs ZeRO over the ranks; in one process it is a world of one. The library
// reports through a callback; the CLI draws the progress bar.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/distributed/communicator.h"
#include "teddy/train/pretrain_config.h"
#include "teddy/train/trainer.h"

namespace teddy {

using PretrainEvent = TrainEvent;

struct PretrainMemory {
  size_t params = 0, grads = 0, optimizer = 0, activations = 0;
  size_t saved_activations = 0;  // of activations: what the layers keep for backward
  size_t weight_scratch = 0;  // bf16/fp16: the 16-bit matmul weights (Model::weight_scratch_bytes)
};

class Pretrainer {
 public:
  // Loads the dataset and builds the model. With resume, continues from the newest
  // intact checkpoint in run_dir (and fails if the run config's model differs); see
  // Resume for a run_dir without checkpoints. The writer first removes temporary
  // checkpoint directories of dead writers (remove_stale_checkpoint_temps).
  // With `comm` (the job's ranks under mpirun, train/job.h), the layout from [dist]
  // is validated against it, each rank reads its slice of every global batch and
  // only rank 0 writes run files; the global batch is micro_batch x grad_accum x dp.
  // nullptr: one process.
  Pretrainer(PretrainConfig cfg, Resume resume, dist::Communicator* comm = nullptr);
  ~Pretrainer();

  // Trains to the configured total; with stop_after > 0, stops (with a checkpoint)
  // once that many steps are completed, as if interrupted there.
  TrainResult run(const std::function<void(const PretrainEvent&)>& on_event, int64_t stop_after = 0);
  // The MFU denominator when the config gives no run.peak_gflops: probe(threads), in
  // GFLOP/s, called once at the start of run() (the CLI passes the physical peak of
  // bench/peak_flops.h: fp32's, or bf16's for bf16 products; train/ does not measure). With neither, MFU reports 0.
  void set_peak_probe(std::function<double(int threads)> probe);

  const PretrainConfig& config() const;
  const std::vector<double>& step_losses() const;  // training loss of each step run here
  PretrainMemory memory() const;  // this rank's
  int64_t start_step() const;  // 0, or the resumed checkpoint's step
  Trainer& trainer();

 private:
  class Task;
  Task* task_ = nullptr;  // owned by trainer_
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace teddy
