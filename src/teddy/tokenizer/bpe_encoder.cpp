#include "teddy/tokenizer/bpe_encoder.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <queue>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "teddy/core/error.h"

namespace teddy {
namespace {

// Longer pieces use the heap-based loop: the array loop is O(n^2) in the piece
// length (fine for words, ruinous for a 1 MB run of base64 or whitespace).
constexpr size_t kShortPiece = 128;
constexpr size_t kMaxTokenBytes = 65535;  // keys_ stores a u16 length

uint64_t hash_bytes(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

}  // namespace

BpeEncoder::Cache::Cache(size_t text_bytes) {
  // About one entry per 64 bytes of text, 64..4096 entries (16 B..256 KiB).
  entries_.resize(std::bit_ceil(std::clamp<size_t>(text_bytes / 64, 64, 4096)));
}

BpeEncoder::Hit BpeEncoder::find_hashed(std::string_view bytes, uint64_t h) const {
  if (slots_.empty()) return {kNoRank, 0};
  const uint32_t hi = static_cast<uint32_t>(h >> 32);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.offset == 0) return {kNoRank, 0};
    if (s.hash_hi != hi) continue;
    const char* k = keys_.data() + s.offset;
    uint16_t len;
    std::memcpy(&len, k, 2);
    if (len == bytes.size() && std::memcmp(k + 2, bytes.data(), len) == 0) return {s.rank, s.id};
  }
}

BpeEncoder::Hit BpeEncoder::find(std::string_view bytes) const {
  if (bytes.empty() || bytes.size() > kMaxTokenBytes) return {kNoRank, 0};
  return find_hashed(bytes, hash_bytes(bytes));
}

void BpeEncoder::insert_slot(const Slot& s, uint64_t hash) {
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i].offset != 0) i = (i + 1) & mask;
  slots_[i] = s;
}

void BpeEncoder::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(1024, old.size() * 2), Slot{});
  for (const Slot& s : old) {
    if (s.offset == 0) continue;
    uint16_t len;
    std::memcpy(&len, keys_.data() + s.offset, 2);
    insert_slot(s, hash_bytes(std::string_view(keys_).substr(s.offset + 2, len)));
  }
}

void BpeEncoder::add(std::string_view bytes, uint32_t rank, uint32_t id) {
  if (bytes.empty()) throw Error("bpe: empty token (id " + std::to_string(id) + ")");
  if (bytes.size() > kMaxTokenBytes)
    throw Error("bpe: token id " + std::to_string(id) + " is longer than 65535 bytes");
  if (rank == kNoRank) throw Error("bpe: token id " + std::to_string(id) + " has no rank");
  if (find(bytes).rank != kNoRank)
    throw Error("bpe: duplicate token bytes (id " + std::to_string(id) + ", rank " + std::to_string(rank) + ")");
  if (keys_.size() + bytes.size() + 2 > UINT32_MAX) throw Error("bpe: vocabulary too large");
  if ((count_ + 1) * 2 > slots_.size()) grow();  // load factor <= 1/2
  const uint64_t h = hash_bytes(bytes);
  Slot s;
  s.hash_hi = static_cast<uint32_t>(h >> 32);
  s.offset = static_cast<uint32_t>(keys_.size());
  s.rank = rank;
  s.id = id;
  const uint16_t len = static_cast<uint16_t>(bytes.size());
  keys_.append(reinterpret_cast<const char*>(&len), 2);
  keys_.append(bytes);
  insert_slot(s, h);
  ++count_;
  if (bytes.size() == 1) {
    byte_id_[static_cast<unsigned char>(bytes[0])] = id;
  } else if (bytes.size() == 2) {
    pair_hit_[static_cast<unsigned char>(bytes[0]) << 8 | static_cast<unsigned char>(bytes[1])] = {rank, id};
  }
}

void BpeEncoder::check_all_bytes() const {
  for (int b = 0; b < 256; ++b)
    if (byte_id_[b] == UINT32_MAX) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw Error(std::string("bpe: vocabulary has no token for byte ") + hex +
                  ", so some inputs could not be encoded");
    }
}

BpeEncoder::Hit BpeEncoder::find_merge(uint32_t left, uint32_t right) const {
  if (merge_slots_.empty()) return {kNoRank, 0};
  const uint64_t key = uint64_t{left} << 32 | right;
  const size_t mask = merge_slots_.size() - 1;
  for (size_t i = XXH3_64bits(&key, 8) & mask;; i = (i + 1) & mask) {
    const MergeSlot& s = merge_slots_[i];
    if (s.key == key) return {s.rank, s.id};
    if (s.key == UINT64_MAX) return {kNoRank, 0};
  }
}

void BpeEncoder::grow_merges() {
  std::vector<MergeSlot> old = std::move(merge_slots_);
  merge_slots_.assign(std::max<size_t>(1024, old.size() * 2), MergeSlot{});
  const size_t mask = merge_slots_.size() - 1;
  for (const MergeSlot& s : old) {
    if (s.key == UINT64_MAX) continue;
    size_t i = XXH3_64bits(&s.key, 8) & mask;
    while (merge_slots_[i].key != UINT64_MAX) i = (i + 1) & mask;
    merge_slots_[i] = s;
  }
}

void BpeEncoder::add_merge(uint32_t left, uint32_t right, uint32_t rank, uint32_t id) {
  if (rank == kNoRank) throw Error("bpe: merge has no rank");
  if (find_merge(left, right).rank != kNoRank) return;  // listed before: the earlier rank stands
  if ((merge_count_ + 1) * 2 > merge_slots_.size()) grow_merges();
  const uint64_t key = uint64_t{left} << 32 | right;
  const size_t mask = merge_slots_.size() - 1;
  size_t i = XXH3_64bits(&key, 8) & mask;
  while (merge_slots_[i].key != UINT64_MAX) i = (i + 1) & mask;
  merge_slots_[i] = {key, rank, id};
  ++merge_count_;
}

void BpeEncoder::encode_piece(std::string_view piece, std::vector<uint32_t>& out, Cache* cache) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (piece.size() > kShortPiece) {
    const Hit whole = (!pair_rule() || whole_piece_first_) ? find(piece) : Hit{kNoRank, 0};
    if (whole.rank != kNoRank)
      out.push_back(whole.id);
    else
      merge(piece, out);
    return;
  }
  const uint64_t h = hash_bytes(piece);
  if (!pair_rule() || whole_piece_first_) {  // most words are a single token
    const Hit whole = piece.size() == 2 ? hit_of(piece) : find_hashed(piece, h);
    if (whole.rank != kNoRank) {
      out.push_back(whole.id);
      return;
    }
  }
  Cache::Entry* e = nullptr;
  if (cache && piece.size() > 2) {
    e = &cache->entries_[(h ^ (h >> 29)) & (cache->entries_.size() - 1)];
    if (e->hash == h && e->len == piece.size() && std::memcmp(e->text, piece.data(), piece.size()) == 0) {
      out.insert(out.end(), e->ids, e->ids + e->n);
      return;
    }
  }
  const size_t before = out.size();
  merge(piece, out);
  const size_t n = out.size() - before;
  if (e && n <= Cache::kMaxIds) {
    e->hash = h;
    e->text = piece.data();
    e->len = static_cast<uint16_t>(piece.size());
    e->n = static_cast<uint16_t>(n);
    std::copy(out.begin() + static_cast<ptrdiff_t>(before), out.end(), e->ids);
  }
}

void BpeEncoder::merge(std::string_view piece, std::vector<uint32_t>& out) const {
  if (pair_rule()) {
    auto join = [this](uint32_t, uint32_t, uint32_t, uint32_t a, uint32_t b) { return find_merge(a, b); };
    if (piece.size() <= kShortPiece)
      merge_short(piece, out, join);
    else
      merge_long(piece, out, join);
  } else {
    auto join = [this, piece](uint32_t begin, uint32_t, uint32_t end, uint32_t, uint32_t) {
      return hit_of(piece.substr(begin, end - begin));
    };
    if (piece.size() <= kShortPiece)
      merge_short(piece, out, join);
    else
      merge_long(piece, out, join);
  }
}

// tiktoken's byte_pair_merge, generalised: part i spans [start[i], start[i+1]) and is
// token id[i]; rank[i] is the rank of joining parts i and i+1 (join_id[i] the id it
// makes). The minimum, leftmost on ties, joins; the two neighbouring candidates
// are recomputed.
template <class Join>
void BpeEncoder::merge_short(std::string_view piece, std::vector<uint32_t>& out, Join join) const {
  uint32_t start[kShortPiece + 1], rank[kShortPiece + 1], join_id[kShortPiece + 1], id[kShortPiece + 1];
  const uint32_t n = static_cast<uint32_t>(piece.size());
  for (uint32_t i = 0; i < n; ++i) {
    start[i] = i;
    id[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  }
  start[n] = n;
  for (uint32_t i = 0; i + 1 < n; ++i) {
    const Hit h = join(i, i + 1, i + 2, id[i], id[i + 1]);
    rank[i] = h.rank;
    join_id[i] = h.id;
  }
  rank[n - 1] = kNoRank;
  size_t m = n;  // number of parts
  auto recompute = [&](size_t i) {  // candidate of joining parts i and i+1
    if (i + 1 >= m) {
      rank[i] = kNoRank;
      return;
    }
    const Hit h = join(start[i], start[i + 1], start[i + 2], id[i], id[i + 1]);
    rank[i] = h.rank;
    join_id[i] = h.id;
  };
  for (;;) {
    uint32_t best = kNoRank;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; ++i)
      if (rank[i] < best) { best = rank[i]; bi = i; }
    if (best == kNoRank) break;
    id[bi] = join_id[bi];
    // Remove part bi+1.
    const size_t tail = m - bi - 1;  // entries after bi+1 in start[] (including the end marker)
    std::memmove(&start[bi + 1], &start[bi + 2], tail * sizeof(uint32_t));
    std::memmove(&rank[bi + 1], &rank[bi + 2], (tail - 1) * sizeof(uint32_t));
    std::memmove(&join_id[bi + 1], &join_id[bi + 2], (tail - 1) * sizeof(uint32_t));
    std::memmove(&id[bi + 1], &id[bi + 2], (tail - 1) * sizeof(uint32_t));
    --m;
    recompute(bi);
    if (bi > 0) recompute(bi - 1);
  }
  out.insert(out.end(), id, id + m);
}

// The same merges in O(n log n): a linked list of parts and a min-heap of
// (rank, start) candidates, stale entries skipped on pop. Ordering by start
// reproduces the leftmost-on-ties rule.
template <class Join>
void BpeEncoder::merge_long(std::string_view piece, std::vector<uint32_t>& out, Join join) const {
  const uint32_t n = static_cast<uint32_t>(piece.size());
  std::vector<uint32_t> next(n + 1), prev(n + 1), rank(n + 1, kNoRank), join_id(n + 1), id(n + 1);
  for (uint32_t i = 0; i <= n; ++i) {
    next[i] = i + 1;
    prev[i] = i - 1;
    if (i < n) id[i] = byte_id_[static_cast<unsigned char>(piece[i])];
  }
  std::vector<bool> alive(n + 1, true);
  using Entry = std::pair<uint32_t, uint32_t>;  // (rank, start)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto candidate = [&](uint32_t i) {  // joining the part at i with its right neighbour
    const uint32_t j = next[i];
    rank[i] = kNoRank;
    if (j < n) {
      const Hit h = join(i, j, next[j], id[i], id[j]);
      rank[i] = h.rank;
      join_id[i] = h.id;
    }
    if (rank[i] != kNoRank) heap.push({rank[i], i});
  };
  for (uint32_t i = 0; i + 1 < n; ++i) candidate(i);
  while (!heap.empty()) {
    const auto [r, i] = heap.top();
    heap.pop();
    if (!alive[i] || rank[i] != r) continue;  // stale
    const uint32_t j = next[i];
    alive[j] = false;
    id[i] = join_id[i];
    next[i] = next[j];
    prev[next[j]] = i;
    candidate(i);
    if (i > 0) candidate(prev[i]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) out.push_back(id[i]);
}

// Byte rule with a rank limit, for recovering merges (linked list + heap as above).
std::vector<uint32_t> BpeEncoder::merge_parts(std::string_view piece, uint32_t limit) const {
  const uint32_t n = static_cast<uint32_t>(piece.size());
  std::vector<uint32_t> next(n + 1), prev(n + 1), rank(n + 1, kNoRank);
  for (uint32_t i = 0; i <= n; ++i) { next[i] = i + 1; prev[i] = i - 1; }
  std::vector<bool> alive(n + 1, true);
  using Entry = std::pair<uint32_t, uint32_t>;  // (rank, start)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto pair_rank = [&](uint32_t i) {  // rank of merging the part at i with its right neighbour
    const uint32_t j = next[i];
    if (j >= n) return kNoRank;
    const uint32_t r = hit_of(piece.substr(i, next[j] - i)).rank;
    return r < limit ? r : kNoRank;
  };
  for (uint32_t i = 0; i + 1 < n; ++i) {
    rank[i] = pair_rank(i);
    if (rank[i] != kNoRank) heap.push({rank[i], i});
  }
  while (!heap.empty()) {
    const auto [r, i] = heap.top();
    heap.pop();
    if (!alive[i] || rank[i] != r) continue;  // stale
    const uint32_t j = next[i];
    alive[j] = false;
    next[i] = next[j];
    prev[next[j]] = i;
    rank[i] = pair_rank(i);
    if (rank[i] != kNoRank) heap.push({rank[i], i});
    if (i > 0) {
      const uint32_t p = prev[i];
      rank[p] = pair_rank(p);
      if (rank[p] != kNoRank) heap.push({rank[p], p});
    }
  }
  std::vector<uint32_t> starts;
  for (uint32_t i = 0; i < n; i = next[i]) starts.push_back(i);
  starts.push_back(n);
  return starts;
}

}  // namespace teddy
