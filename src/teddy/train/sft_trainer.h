#pragma once
// The supervised-finetuning loop behind `teddy sft`: a teddy checkpoint and its
// tokenizer, the chat template's special tokens added (the vocabulary and embedding
// grown to match, see grow_vocab.h), JSONL examples rendered with a loss mask on the
// answers, packed or padded micro-batches, AdamW with warmup + cosine, periodic
// validation on a held-out split, checkpoints and exact resume, metrics.jsonl: the
// SFT task run by the one training loop (trainer.h), the same one pretraining uses,
// so it runs data parallel under mpirun / srun too (each rank its slice of every
// global batch and of the validation split). Reports through the same event type
// as Pretrainer, so the CLI draws the same progress bar.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/distributed/communicator.h"
#include "teddy/train/trainer.h"
#include "teddy/train/sft_config.h"

namespace teddy {

using SftEvent = TrainEvent;  // start / step / eval / checkpoint / end, the same fields as pretraining's

// What loading the data did, for the start report and tests.
struct SftDataReport {
  SftReadStats train_read, val_read;  // val_read empty when split from train
  SftDatasetStats train, val;
  size_t rows_per_epoch = 0;          // training rows (epoch 0's plan)
  double fill = 0;                    // pack: share of row positions holding an example
  int added_specials = 0;             // tokens the template added to the tokenizer
  int base_vocab = 0, vocab = 0;      // model vocabulary before / after
  std::string init_checkpoint;
  std::vector<std::string> init_skipped;  // model.init's newer checkpoints passed over (damaged), "dir: why"
};

class SftTrainer {
 public:
  // Loads the init checkpoint, tokenizer, template and data, builds the model. With
  // resume, continues from the newest intact checkpoint in run_dir (whose model must
  // equal the one built from the init checkpoint and template); see Resume for a
  // run_dir without checkpoints. Temporary checkpoint directories of dead writers
  // are removed first (remove_stale_checkpoint_temps). With `comm` (the job's ranks
  // under mpirun, train/job.h) the run is data parallel over them ([dist]); nullptr:
  // one process.
  SftTrainer(SftConfig cfg, Resume resume, dist::Communicator* comm = nullptr);
  ~SftTrainer();

  // Trains to the total; with stop_after > 0 stops (with a checkpoint) after that many
  // steps, as if interrupted. A fresh run evaluates once before the first step.
  TrainResult run(const std::function<void(const SftEvent&)>& on_event, int64_t stop_after = 0);
  // The MFU denominator when the config gives no run.peak_gflops: probe(threads), in
  // GFLOP/s, called once at the start of run() (the CLI passes the physical peak of
  // bench/peak_flops.h: fp32's, or bf16's for bf16 products; train/ does not measure). With neither, MFU reports 0.
  void set_peak_probe(std::function<double(int threads)> probe);

  const SftConfig& config() const;
  const SftDataReport& data_report() const;
  int64_t total_steps() const;
  int64_t start_step() const;
  const std::vector<double>& step_losses() const;  // training loss of each step run here
  double validation_loss();                        // over the configured validation batches (every rank calls)
  Model& model();
  const Tokenizer& tokenizer() const;
  const ChatTemplate& chat_template() const;
  Trainer& trainer();

 private:
  class Task;
  Task* task_ = nullptr;  // owned by trainer_
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace teddy
