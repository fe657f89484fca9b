#pragma once
// How the ranks of a job divide the work: world = dp × tp × pp × cp. Only data
// parallelism exists today (the other axes must be 1), but every consumer asks this
// object for its group sizes and coordinates, so adding an axis changes one place.
#include <string>

namespace teddy::dist {

struct ParallelLayout {
  int dp = 1;  // data parallel (ZeRO shards over these ranks)
  int tp = 1;  // tensor parallel (not implemented: must be 1)
  int pp = 1;  // pipeline parallel (not implemented: must be 1)
  int cp = 1;  // context parallel (not implemented: must be 1)
  int zero = 0;  // ZeRO stage 0..3 over the dp group

  int world() const { return dp * tp * pp * cp; }
  // Rank order: dp outermost ... (all other axes 1 today, so dp rank == world rank).
  int dp_rank(int world_rank) const { return world_rank / (tp * pp * cp); }

  // Throws ConfigError naming the axis when the product is not `world_size`, an axis
  // is < 1, an unimplemented axis is > 1, or zero is outside 0..3.
  void validate(int world_size) const;
  // The layout a job of `world_size` ranks gets when only data parallelism is asked for.
  static ParallelLayout data_parallel(int world_size, int zero_stage);
  std::string describe() const;  // "dp=2 tp=1 pp=1 cp=1 zero=1"
};

}  // namespace teddy::dist
