#include "teddy/data/token_stream.h"

#include <algorithm>
#include <filesystem>

#include "teddy/core/error.h"

namespace teddy {

TokenStream::TokenStream(const std::string& dir, const std::vector<ShardInfo>& shards, int64_t vocab_size,
                         bool verify) {
  for (const auto& info : shards) {
    const std::string path = (std::filesystem::path(dir) / info.path).string();
    ShardReader r(path, verify);
    const ShardHeader& h = r.header();
    if (h.token_count != info.tokens || h.checksum != info.checksum)
      throw FormatError(path + ": header disagrees with the manifest (token count or checksum): "
                        "the shard was replaced or the dataset is corrupt; re-run `teddy data prepare`");
    if (static_cast<int64_t>(h.vocab_size) != vocab_size)
      throw FormatError(path + ": vocab size " + std::to_string(h.vocab_size) + " differs from the manifest's " +
                        std::to_string(vocab_size));
    if (h.token_count == 0) continue;
    begin_.push_back(total_);
    total_ += h.token_count;
    shards_.push_back(std::move(r));
  }
}

void TokenStream::read(uint64_t start, uint64_t n, int32_t* out) const {
  if (start > total_ || n > total_ - start)
    throw Error("token stream: read of [" + std::to_string(start) + ", " + std::to_string(start + n) +
                ") past the end (" + std::to_string(total_) + " tokens)");
  // The shard holding `start`: the last one that begins at or before it.
  size_t s = static_cast<size_t>(std::upper_bound(begin_.begin(), begin_.end(), start) - begin_.begin()) - 1;
  while (n > 0) {
    const uint64_t local = start - begin_[s];
    const uint64_t take = std::min(n, shards_[s].size() - local);
    shards_[s].read(local, take, out);
    out += take;
    start += take;
    n -= take;
    ++s;
  }
}

}  // namespace teddy
