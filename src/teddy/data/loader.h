#pragma once
// Training and validation batches from a prepared dataset.
//
// Training: optimizer step k's global batch has G = world * grad_accum * B rows, and
// row g of it is a function of (seed, k, g) only: its source is drawn from the
// mixture, then a window of T+1 tokens starts at a uniform position in that source's
// training tokens. Rank r's micro-batch j holds rows r*(A*B) + j*B .. + B-1 (A =
// grad_accum), so however a global batch is split into micro_batch x grad_accum x
// data-parallel ranks, a step trains on the same G rows: lowering the micro-batch to
// fit memory (and raising grad_accum) does not change the run beyond summation order.
// No hidden state but (step, micro-batch), so a resumed run that restores LoaderState
// continues with exactly the batches it would have seen, and batches do not depend on
// thread timing.
//
// Validation: every source's validation tokens cut into consecutive,
// non-overlapping windows, in manifest order; rank r takes windows r, r+W, ...,
// truncated so that every rank gets the same number.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/data/manifest.h"
#include "teddy/data/mixture.h"
#include "teddy/data/token_stream.h"

namespace teddy {

struct LoaderOptions {
  uint64_t seed = 0;
  int rank = 0;   // data-parallel rank
  int world = 1;  // data-parallel size
  int grad_accum = 1;  // micro-batches per optimizer step (each next_batch call is one)
  bool verify_checksums = true;  // rehash every shard on open
};

// What a checkpoint must keep to resume the data stream.
struct LoaderState {
  uint64_t seed = 0;
  uint64_t step = 0;                  // optimizer steps (global batches) drawn so far
  uint64_t micro = 0;                 // micro-batches of the current step drawn (0 at a step boundary)
  // Checkpoints before batch-split invariance (no "version" key) counted micro-batches
  // in `step`; restore() converts them with the run's grad_accum.
  bool legacy_step = false;
  std::vector<std::string> sources;   // mixture order
  std::vector<uint64_t> tokens_seen;  // per source, summed over all ranks (target tokens)

  std::string to_json() const;
  static LoaderState from_json(const std::string& text);  // throws FormatError
};

class DataLoader {
 public:
  // `mixture` names the sources to train on; empty = the weights stored in the manifest.
  // Throws ConfigError for an unknown source or bad rank/world, FormatError for bad shards.
  DataLoader(const std::string& dataset_dir, const Mixture& mixture, const LoaderOptions& opt);

  // Fills tokens and targets (each B*T, row-major (B, T)) with this rank's next
  // micro-batch of the current step; targets are tokens shifted by one. After
  // grad_accum calls the step advances. Throws Error if a source has fewer than T+1
  // tokens.
  void next_batch(int32_t* tokens, int32_t* targets, int B, int T);

  // Source index (into mixture()) of global row `row` at training step `step`.
  size_t row_source(uint64_t step, uint64_t row) const;

  const LoaderState& state() const { return state_; }
  // Restores a checkpointed state. Throws ConfigError if its sources differ from the mixture.
  void restore(const LoaderState& s);

  const Manifest& manifest() const { return manifest_; }
  const Mixture& mixture() const { return mixture_; }
  uint64_t source_tokens(size_t i) const { return streams_[i].size(); }  // training tokens

 private:
  std::string dir_;
  Manifest manifest_;
  Mixture mixture_;
  LoaderOptions opt_;
  std::vector<TokenStream> streams_;  // one per mixture source (train split)
  LoaderState state_;
};

class ValidationLoader {
 public:
  // `sources` selects and orders sources (empty = all, manifest order).
  ValidationLoader(const std::string& dataset_dir, const LoaderOptions& opt,
                   const std::vector<std::string>& sources = {});

  // Fills up to B rows; returns how many were filled (0 once exhausted; then reset()).
  // row_source, if given, receives each filled row's index into source_names().
  int next_batch(int32_t* tokens, int32_t* targets, int B, int T, int* row_source = nullptr);
  void reset() { next_ = 0; }
  // Windows this rank will see for sequence length T.
  uint64_t windows(int T) const;
  const std::vector<std::string>& source_names() const { return names_; }

 private:
  LoaderOptions opt_;
  std::vector<std::string> names_;
  std::vector<TokenStream> streams_;
  uint64_t next_ = 0;  // this rank's next window index
};

}  // namespace teddy
