#pragma once
// One split of one source as a single token sequence: its shards, memory-mapped and
// concatenated. Reads may cross shard boundaries (documents do too).
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/data/manifest.h"
#include "teddy/data/shard.h"

namespace teddy {

class TokenStream {
 public:
  TokenStream() = default;
  // Opens every shard under `dir` and checks its header against the manifest entry
  // (token count, checksum, vocab size); verify = true also rehashes the tokens.
  // Throws FormatError naming the shard.
  TokenStream(const std::string& dir, const std::vector<ShardInfo>& shards, int64_t vocab_size, bool verify);

  uint64_t size() const { return total_; }
  // Copies tokens [start, start + n) as int32. Throws Error if out of range.
  void read(uint64_t start, uint64_t n, int32_t* out) const;

 private:
  std::vector<ShardReader> shards_;
  std::vector<uint64_t> begin_;  // first global index of each shard
  uint64_t total_ = 0;
};

}  // namespace teddy
