#include "teddy/train/sft_batches.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "teddy/core/error.h"

namespace teddy {

std::string_view sft_batching_name(SftBatching b) { return b == SftBatching::pack ? "pack" : "pad"; }

SftBatching sft_batching_from_name(std::string_view name, std::string_view field) {
  if (name == "pack") return SftBatching::pack;
  if (name == "pad") return SftBatching::pad;
  throw ConfigError(std::string(field) + ": must be \"pack\" or \"pad\" (got \"" + std::string(name) + "\")");
}

std::vector<SftRow> plan_sft_rows(const SftDataset& ds, std::span<const uint32_t> order, SftBatching mode) {
  std::vector<SftRow> rows;
  if (mode == SftBatching::pad) {
    rows.reserve(order.size());
    for (uint32_t i : order) rows.push_back({i});
    return rows;
  }
  // First fit: each example goes into the first row with room, else a new row. Rows
  // stay in creation order, so the shuffled order still decides what trains together.
  const size_t T = static_cast<size_t>(ds.seq_len());
  std::vector<size_t> used;
  size_t first_open = 0;  // rows before it are (nearly) full: skip them
  for (uint32_t i : order) {
    const size_t need = ds.positions(i);
    size_t r = first_open;
    while (r < rows.size() && used[r] + need > T) ++r;
    if (r == rows.size()) {
      rows.emplace_back();
      used.push_back(0);
    }
    rows[r].push_back(i);
    used[r] += need;
    while (first_open < rows.size() && T - used[first_open] < 2) ++first_open;  // no example fits in < 2
  }
  return rows;
}

Batch SftMicroBatch::batch() const {
  Batch b;
  b.tokens = tokens.data();
  b.targets = targets.data();
  b.pos = packed ? pos.data() : nullptr;
  b.seg = packed ? seg.data() : nullptr;
  b.B = B;
  b.T = T;
  return b;
}

int sft_micro_batch_width(const SftDataset& ds, std::span<const SftRow> rows, SftBatching mode) {
  if (mode == SftBatching::pack) return ds.seq_len();
  size_t longest = 0;
  for (const SftRow& r : rows) {
    if (r.size() != 1) throw Error("SFT micro-batch: a padded row holds exactly one example");
    longest = std::max(longest, ds.positions(r[0]));
  }
  return static_cast<int>(longest);
}

void fill_sft_micro_batch(const SftDataset& ds, std::span<const SftRow> rows, SftBatching mode, SftMicroBatch& out) {
  if (rows.empty()) throw Error("SFT micro-batch: no rows");
  const int T = sft_micro_batch_width(ds, rows, mode);
  out.B = static_cast<int>(rows.size());
  out.T = T;
  out.packed = mode == SftBatching::pack;
  const size_t n = static_cast<size_t>(out.B) * T;
  out.tokens.assign(n, 0);
  out.targets.assign(n, kIgnoreIndex);
  out.pos.assign(out.packed ? n : 0, 0);
  out.seg.assign(out.packed ? n : 0, 0);
  out.real_positions = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    size_t at = r * static_cast<size_t>(T);
    const size_t row_end = at + static_cast<size_t>(T);
    int32_t doc = 0;
    for (uint32_t idx : rows[r]) {
      const ChatTokens& ex = ds[idx];
      const size_t len = ex.tokens.size() - 1;
      if (at + len > row_end) throw Error("SFT micro-batch: row " + std::to_string(r) + " overflows the context");
      for (size_t j = 0; j < len; ++j) {
        out.tokens[at + j] = ex.tokens[j];
        out.targets[at + j] = ex.loss[j + 1] ? ex.tokens[j + 1] : kIgnoreIndex;
        if (out.packed) {
          out.pos[at + j] = static_cast<int32_t>(j);
          out.seg[at + j] = doc;
        }
      }
      at += len;
      out.real_positions += static_cast<int64_t>(len);
      ++doc;
    }
    if (out.packed)  // the tail: a document of its own, positions from 0
      for (size_t j = 0; at + j < row_end; ++j) {
        out.pos[at + j] = static_cast<int32_t>(j);
        out.seg[at + j] = doc;
      }
  }
}

SftBatchStream::SftBatchStream(const SftDataset& ds, SftBatching mode, uint64_t seed)
    : ds_(&ds), mode_(mode), seed_(seed) {
  if (ds.size() == 0) throw Error("SFT batch stream: the dataset has no examples");
  load_epoch(0);
}

std::vector<uint32_t> SftBatchStream::epoch_order(uint64_t epoch) const {
  std::vector<uint32_t> order(ds_->size());
  std::iota(order.begin(), order.end(), 0u);
  // Fisher-Yates with our own index draw: std::shuffle's use of the engine is
  // implementation-defined, and the order must not change with the library.
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch * 0xD1B54A32D192ED03ull + 1);
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

size_t SftBatchStream::epoch_rows(uint64_t epoch) const {
  if (mode_ == SftBatching::pad) return ds_->size();
  if (epoch == epoch_) return plan_.size();
  const std::vector<uint32_t> order = epoch_order(epoch);
  return plan_sft_rows(*ds_, order, mode_).size();
}

void SftBatchStream::load_epoch(uint64_t e) {
  const std::vector<uint32_t> order = epoch_order(e);
  plan_ = plan_sft_rows(*ds_, order, mode_);
  epoch_ = e;
  in_epoch_ = 0;
}

void SftBatchStream::next_rows(int B, std::vector<SftRow>& out) {
  if (B < 1) throw Error("SFT batch stream: B must be >= 1");
  out.clear();
  for (int b = 0; b < B; ++b) {
    if (in_epoch_ == plan_.size()) load_epoch(epoch_ + 1);
    out.push_back(plan_[in_epoch_++]);
    ++rows_;
  }
}

void SftBatchStream::next(int B, SftMicroBatch& out) {
  next_rows(B, scratch_);
  fill_sft_micro_batch(*ds_, scratch_, mode_, out);
}

void SftBatchStream::seek(uint64_t rows) {
  load_epoch(0);
  uint64_t left = rows;
  while (left >= plan_.size()) {
    left -= plan_.size();
    load_epoch(epoch_ + 1);
  }
  in_epoch_ = static_cast<size_t>(left);
  rows_ = rows;
}

}  // namespace teddy
