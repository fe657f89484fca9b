#pragma once
// The BPE merge loop over one pre-token. Two rules, picked by the vocabulary:
//
//  - by bytes (tiktoken's byte_pair_merge; tiktoken rank files): repeatedly join the
//    adjacent parts whose concatenated bytes form the token of lowest rank; a piece
//    that is itself a token is emitted whole.
//  - by pairs (Hugging Face BPE, teddy's trained tokenizers): repeatedly apply the
//    listed merge (left id, right id) of lowest rank among adjacent parts. The whole
//    piece is tried as one token first only if asked (HF's ignore_merges).
//
// Both take the leftmost candidate on ties. Pieces up to kShortPiece bytes use an
// array loop (fast, O(n^2)); longer ones a heap (O(n log n)).
//
// Tokens live in an open-addressing hash table keyed by their bytes (XXH3, 16-byte
// slots, load <= 1/2) plus a direct 64K table for two-byte tokens; merges in a
// table keyed by the id pair. An optional per-call Cache remembers the ids of
// recent multi-token pieces (identifiers, indentation) so repeats skip the merges.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

inline constexpr uint32_t kNoRank = UINT32_MAX;

class BpeEncoder {
 public:
  struct Hit { uint32_t rank, id; };  // rank == kNoRank: not a token / not a merge

  BpeEncoder() = default;
  // Adds a token. Throws Error if the same bytes were added before.
  void add(std::string_view bytes, uint32_t rank, uint32_t id);
  // Switches to the pair rule and adds merge (left, right) -> id. A pair listed
  // twice keeps its lowest rank.
  void add_merge(uint32_t left, uint32_t right, uint32_t rank, uint32_t id);
  // Pair rule only: emit a piece that is a token whole, before merging.
  void set_whole_piece_first(bool on) { whole_piece_first_ = on; }
  bool pair_rule() const { return !merge_slots_.empty(); }
  // Throws Error naming the first byte value that has no single-byte token.
  void check_all_bytes() const;
  size_t size() const { return count_; }

  // Remembers pieces by pointer into the text being encoded: use one Cache per
  // text (or per thread and text) and drop it before the text goes away.
  class Cache {
   public:
    explicit Cache(size_t text_bytes);  // sized to the text: small texts, small cache
   private:
    friend class BpeEncoder;
    static constexpr int kMaxIds = 10;
    struct Entry {
      uint64_t hash = 0;
      const char* text = nullptr;
      uint16_t len = 0, n = 0;
      uint32_t ids[kMaxIds];
    };
    std::vector<Entry> entries_;
  };

  // Appends the ids of `piece` to `out`.
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out, Cache* cache = nullptr) const;

  // Byte rule: starts of the parts left (plus piece.size() at the end) when only
  // tokens of rank < limit may form. For a token of rank r, limit r gives the pair
  // BPE builds it from.
  std::vector<uint32_t> merge_parts(std::string_view piece, uint32_t limit) const;

  Hit find(std::string_view bytes) const;
  Hit find_merge(uint32_t left, uint32_t right) const;

 private:
  struct Slot {
    uint32_t hash_hi = 0;  // upper hash bits, to skip most key comparisons
    uint32_t offset = 0;   // into keys_: u16 length, then the bytes; 0 = empty slot
    uint32_t rank = kNoRank, id = 0;
  };
  struct MergeSlot {
    uint64_t key = UINT64_MAX;  // left << 32 | right; UINT64_MAX = empty
    uint32_t rank = kNoRank, id = 0;
  };
  Hit find_hashed(std::string_view bytes, uint64_t hash) const;
  void grow();
  void insert_slot(const Slot& s, uint64_t hash);
  void grow_merges();
  Hit hit_of(std::string_view bytes) const {
    if (bytes.size() == 2)
      return pair_hit_[static_cast<unsigned char>(bytes[0]) << 8 | static_cast<unsigned char>(bytes[1])];
    return find(bytes);
  }
  // The merge loops, generic over the rule: join(start_a, start_b, end_b, id_a, id_b).
  template <class Join> void merge_short(std::string_view piece, std::vector<uint32_t>& out, Join join) const;
  template <class Join> void merge_long(std::string_view piece, std::vector<uint32_t>& out, Join join) const;
  void merge(std::string_view piece, std::vector<uint32_t>& out) const;

  std::string keys_ = std::string(1, '\0');  // offset 0 is reserved for "empty"
  std::vector<Slot> slots_;
  size_t count_ = 0;
  std::vector<Hit> pair_hit_ = std::vector<Hit>(65536, Hit{kNoRank, 0});
  std::vector<uint32_t> byte_id_ = std::vector<uint32_t>(256, UINT32_MAX);
  std::vector<MergeSlot> merge_slots_;
  size_t merge_count_ = 0;
  bool whole_piece_first_ = false;
};

}  // namespace teddy
