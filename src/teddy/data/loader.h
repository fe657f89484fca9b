#pragma once
// Training and validation batches from a prepared dataset.
//
// Training: step k's global batch has world * B rows; rank r fills rows r*B .. r*B+B-1,
// so data-parallel ranks see distinct rows and together see exactly the batch a
// single process with B' = world*B would. Row g of step k is a function of
// (seed, k, g) only: its source is drawn from the mixture, then a window of T+1
// tokens starts at a uniform position in that source's training tokens. No hidden
// state, so a resumed run that restores LoaderState (seed, step) continues with
// exactly the batches it would have seen, and batches do not depend on how many
// were drawn before or on thread timing.
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
  bool verify_checksums = true;  // rehash every shard on open
};

// What a checkpoint must keep to resume the data stream.
struct LoaderState {
  uint64_t seed = 0;
  uint64_t step = 0;                  // training batches drawn so far
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

  // Fills tokens and targets (each B*T, row-major (B, T)); targets are tokens shifted
  // by one. Advances the step. Throws Error if a source has fewer than T+1 tokens.
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
