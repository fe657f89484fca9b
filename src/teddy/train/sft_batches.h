#pragma once
// SFT micro-batches from an SftDataset, two ways:
//
//   pack  several examples share a row of seq_len positions (first fit, in the
//         epoch's shuffled order). Each example gets its own document id (Batch.seg:
//         attention stays inside it) and positions restarting at 0 (Batch.pos), so a
//         packed example computes exactly what it would alone. The row's unused tail
//         is padding: token 0, ignored target, a document id of its own.
//   pad   one example per row, the micro-batch as wide as its longest example;
//         padding at the end of a row (causal attention never looks ahead).
//
// The training stream is an endless sequence of epochs; epoch e visits every example
// once in an order drawn from (seed, e) alone, so the rows a step sees depend only on
// how many rows came before it: a resumed run seeks there and continues exactly.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "teddy/data/sft/dataset.h"
#include "teddy/model/model.h"

namespace teddy {

enum class SftBatching { pack, pad };
std::string_view sft_batching_name(SftBatching b);
SftBatching sft_batching_from_name(std::string_view name, std::string_view field = "train.batching");

using SftRow = std::vector<uint32_t>;  // dataset indices sharing one row

// pack: first fit of `order` into rows of ds.seq_len() positions; pad: one example a row.
std::vector<SftRow> plan_sft_rows(const SftDataset& ds, std::span<const uint32_t> order, SftBatching mode);

struct SftMicroBatch {
  int B = 0, T = 0;
  bool packed = false;
  std::vector<int32_t> tokens, targets, pos, seg;  // (B, T); pos and seg only when packed
  int64_t real_positions = 0;  // positions holding an example (not padding)
  Batch batch() const;         // views into the vectors
};

// Lays `rows` out as one micro-batch (B = rows.size()). pack: T = ds.seq_len();
// pad: T = the longest example among the rows (sft_micro_batch_width).
void fill_sft_micro_batch(const SftDataset& ds, std::span<const SftRow> rows, SftBatching mode, SftMicroBatch& out);
int sft_micro_batch_width(const SftDataset& ds, std::span<const SftRow> rows, SftBatching mode);

class SftBatchStream {
 public:
  // Keeps a pointer to `ds`, which must outlive the stream. Throws Error if ds is empty.
  SftBatchStream(const SftDataset& ds, SftBatching mode, uint64_t seed);

  // The next B rows of the stream (crossing into the next epoch as needed).
  void next(int B, SftMicroBatch& out);
  // The same rows' plans, not laid out (a data-parallel rank passes over the other
  // ranks' rows of a global batch this way).
  void next_rows(int B, std::vector<SftRow>& out);
  uint64_t rows() const { return rows_; }  // rows drawn so far
  // Positions the stream after `rows` rows (as if next() had drawn them).
  void seek(uint64_t rows);
  // Rows in epoch e (packing makes it depend on the order).
  size_t epoch_rows(uint64_t epoch) const;
  uint64_t epoch() const { return epoch_; }
  // The example order of epoch e: a permutation of 0..size-1 from (seed, e).
  std::vector<uint32_t> epoch_order(uint64_t epoch) const;

 private:
  void load_epoch(uint64_t e);
  const SftDataset* ds_;
  SftBatching mode_;
  uint64_t seed_;
  uint64_t rows_ = 0, epoch_ = 0;
  size_t in_epoch_ = 0;
  std::vector<SftRow> plan_;  // epoch_'s rows
  std::vector<SftRow> scratch_;
};

}  // namespace teddy
