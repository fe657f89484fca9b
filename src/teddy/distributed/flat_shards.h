#pragma once
// ZeRO's partition of a flat buffer of n floats over W ranks: equal contiguous
// ranges regardless of tensor boundaries (llm.c zero.cuh, Megatron's distributed
// optimizer). The shard size is ceil(n / W) rounded up to 16 floats (64 bytes, the
// buffers' alignment); the last ranks' ranges are short or empty.
#include <cstddef>
#include <vector>

namespace teddy::dist {

struct Range {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

class FlatShards {
 public:
  FlatShards(size_t n, int world);
  size_t total() const { return n_; }
  int world() const { return world_; }
  size_t shard_size() const { return shard_; }  // before clipping to n
  Range range(int rank) const;
  // Floats of [begin, end) that fall into each rank's range (the counts of a
  // reduce-scatter / all-gather over that slice of the buffer).
  std::vector<size_t> counts(Range r) const;

 private:
  size_t n_ = 0, shard_ = 0;
  int world_ = 1;
};

}  // namespace teddy::dist
