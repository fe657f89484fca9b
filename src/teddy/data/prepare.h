#pragma once
// `teddy data prepare`: tokenize sources into shards plus a manifest.
//
// Layout of the output directory:
//   <out>/manifest.json
//   <out>/<source>/train_000.bin, train_001.bin, ...   (shard_tokens tokens each, the last shorter)
//   <out>/<source>/val_000.bin, ...
// Each document is followed by the tokenizer's end-of-text token. A document goes to
// the validation split when the hash of its text (XXH3-64, split_seed) falls below
// val_fraction, so the split is reproducible and duplicates land on the same side.
//
// The dataset is built in a staging directory next to <out> and renamed into place
// only when every source succeeded: a failed run leaves <out> exactly as it was.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "teddy/data/manifest.h"
#include "teddy/data/source.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {



struct PrepareConfig {
  std::vector<SourceSpec> sources;
  std::string tokenizer = "bytes";  // a tokenizer file, or "bytes" for the built-in byte tokenizer
  std::string out_dir;
  double val_fraction = 0.01;       // in [0, 1)
  uint64_t split_seed = 0;
  uint64_t shard_tokens = uint64_t{1} << 27;  // 128 Mi tokens (256 MiB as uint16)
  uint64_t batch_bytes = uint64_t{64} << 20;  // text tokenized in parallel per round
  bool skip_bad = false;            // count and skip bad JSONL lines instead of failing
  bool overwrite = false;           // replace an existing dataset at out_dir
  int threads = 0;                  // 0 = OpenMP default
};

// Throws ConfigError for a bad value (no sources, duplicate names, val_fraction, ...).
void validate_prepare_config(const PrepareConfig& cfg);

// Called after each source is written, with its manifest entry (for progress output).
using PrepareProgress = std::function<void(const SourceInfo&)>;

// Loads the tokenizer named by cfg.tokenizer and prepares the dataset.
Manifest prepare_dataset(const PrepareConfig& cfg, const PrepareProgress& progress = {});
// Same with an already loaded tokenizer (cfg.tokenizer is recorded as its identity).
Manifest prepare_dataset(const PrepareConfig& cfg, const Tokenizer& tok, const PrepareProgress& progress = {});

// Loads a tokenizer by name: "bytes" or a path (Tokenizer::load).
Tokenizer load_tokenizer_by_name(const std::string& name);

}  // namespace teddy
