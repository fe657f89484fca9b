#pragma once
// The manifest of a prepared dataset: <dir>/manifest.json. It lists the tokenizer
// that produced the tokens, every source (kind, paths, default weight, counts) and
// every shard (relative path, split, token count, checksum). Loaders trust only
// what the manifest names, and cross-check each shard's header against it.
#include <cstdint>
#include <string>
#include <vector>

namespace teddy {

inline constexpr int kManifestVersion = 1;

struct ShardInfo {
  std::string path;      // relative to the dataset directory, e.g. "prose/train_000.bin"
  uint64_t tokens = 0;
  uint64_t checksum = 0;  // XXH3-64 of the token bytes (as in the shard header)
};

struct SourceInfo {
  std::string name, kind;
  std::vector<std::string> paths, extensions;
  std::string text_field, separator;
  double weight = 1.0;  // default mixture weight
  uint64_t files = 0, documents = 0, skipped = 0, bytes = 0;
  std::vector<std::string> skipped_examples;  // first few "file:line: why" of skipped lines
  uint64_t train_documents = 0, val_documents = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
  std::vector<ShardInfo> train_shards, val_shards;
};

struct TokenizerInfo {
  std::string path;          // as given to `data prepare`; "bytes" for the built-in byte tokenizer
  std::string checksum;      // XXH3-64 (hex) of the tokenizer file; "" for "bytes"
  int64_t vocab_size = 0;
  uint32_t eot_id = 0;
  // The dataset's own copy of the tokenizer file, relative to the dataset directory
  // ("tokenizer/<name>"). "" for "bytes" and in datasets prepared before datasets kept
  // a copy (then `path` is found as before: data/dataset_tokenizer.h).
  std::string file;
};

struct Manifest {
  int version = kManifestVersion;
  TokenizerInfo tokenizer;
  uint32_t token_bytes = 2;
  double val_fraction = 0;
  uint64_t split_seed = 0;
  std::vector<SourceInfo> sources;

  // Throws Error if the dataset has no source of that name.
  const SourceInfo& source(const std::string& name) const;
  uint64_t train_tokens() const;
  uint64_t val_tokens() const;

  std::string to_json() const;
  // Throws FormatError naming `where` (file) and the bad field.
  static Manifest from_json(const std::string& text, const std::string& where);
  static Manifest load(const std::string& dir);  // reads <dir>/manifest.json
  void save(const std::string& dir) const;       // atomic write of <dir>/manifest.json
};

std::string manifest_path(const std::string& dir);

}  // namespace teddy
