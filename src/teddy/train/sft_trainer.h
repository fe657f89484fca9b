#pragma once
// The supervised-finetuning loop behind `teddy sft`: a teddy checkpoint and its
// tokenizer, the chat template's special tokens added (the vocabulary and embedding
// grown to match, see grow_vocab.h), JSONL examples rendered with a loss mask on the
// answers, packed or padded micro-batches, AdamW with warmup + cosine, periodic
// validation on a held-out split, checkpoints and exact resume, metrics.jsonl: the
// pretraining loop's machinery with an SFT data stream. Reports through the same
// event type as Pretrainer, so the CLI draws the same progress bar.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "teddy/data/chat_template.h"
#include "teddy/data/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/train/pretrainer.h"
#include "teddy/train/checkpoint.h"
#include "teddy/train/sft_config.h"

namespace teddy {

using SftEvent = PretrainEvent;  // start / step / eval / checkpoint / end, same fields

// What loading the data did, for the start report and tests.
struct SftDataReport {
  SftReadStats train_read, val_read;  // val_read empty when split from train
  SftDatasetStats train, val;
  size_t rows_per_epoch = 0;          // training rows (epoch 0's plan)
  double fill = 0;                    // pack: share of row positions holding an example
  int added_specials = 0;             // tokens the template added to the tokenizer
  int base_vocab = 0, vocab = 0;      // model vocabulary before / after
  std::string init_checkpoint;
};

class SftTrainer {
 public:
  // Loads the init checkpoint, tokenizer, template and data, builds the model. With
  // resume, continues from the newest intact checkpoint in run_dir (whose model must
  // equal the one built from the init checkpoint and template); see Resume for a
  // run_dir without checkpoints. Temporary checkpoint directories of dead writers
  // are removed first (remove_stale_checkpoint_temps).
  SftTrainer(SftConfig cfg, Resume resume);
  ~SftTrainer();

  // Trains to the total; with stop_after > 0 stops (with a checkpoint) after that many
  // steps, as if interrupted. A fresh run evaluates once before the first step.
  void run(const std::function<void(const SftEvent&)>& on_event, int64_t stop_after = 0);
  // The MFU denominator when the config gives no run.peak_gflops: probe(threads), in
  // GFLOP/s, called once at the start of run() (the CLI passes the sgemm ceiling of
  // bench/sgemm_ceiling.h; train/ does not measure). With neither, MFU reports 0.
  void set_peak_probe(std::function<double(int threads)> probe);

  const SftConfig& config() const;
  const SftDataReport& data_report() const;
  int64_t total_steps() const;
  int64_t start_step() const;
  const std::vector<double>& step_losses() const;  // training loss of each step run here
  double validation_loss();                        // over the configured validation batches
  Model& model();
  const Tokenizer& tokenizer() const;
  const ChatTemplate& chat_template() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace teddy
