#pragma once
// The BPE merge loop over one pre-token, tiktoken's byte_pair_merge semantics:
// start from single bytes; repeatedly merge the adjacent pair whose concatenated
// bytes have the lowest rank (leftmost on ties) until no adjacent pair is a token.
// A piece that is itself a mergeable token is emitted whole (tiktoken's fast path).
//
// Tokens live in one open-addressing hash table keyed by their bytes (XXH3, 16-byte
// slots, load <= 1/2), with a direct 64K table for two-byte tokens since most
// merge lookups start there. An optional per-call Cache remembers the ids of
// recent multi-token pieces (identifiers, indentation) so repeats skip the merges.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

inline constexpr uint32_t kNoRank = UINT32_MAX;

class BpeEncoder {
 public:
  struct Hit { uint32_t rank, id; };  // rank == kNoRank: not a token

  BpeEncoder() = default;
  // Adds a mergeable token. Throws Error if the same bytes were added before.
  void add(std::string_view bytes, uint32_t rank, uint32_t id);
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

  // Starts of the parts left (plus piece.size() at the end) when only merges of rank
  // < limit may happen. For a token of rank r, limit r gives the pair BPE builds it from.
  std::vector<uint32_t> merge_parts(std::string_view piece, uint32_t limit) const;

  Hit find(std::string_view bytes) const;

 private:
  struct Slot {
    uint32_t hash_hi = 0;  // upper hash bits, to skip most key comparisons
    uint32_t offset = 0;   // into keys_: u16 length, then the bytes; 0 = empty slot
    uint32_t rank = kNoRank, id = 0;
  };
  Hit find_hashed(std::string_view bytes, uint64_t hash) const;
  void grow();
  void insert_slot(const Slot& s, uint64_t hash);
  Hit hit_of(std::string_view bytes) const {
    if (bytes.size() == 2)
      return pair_hit_[static_cast<unsigned char>(bytes[0]) << 8 | static_cast<unsigned char>(bytes[1])];
    return find(bytes);
  }
  void merge_short(std::string_view piece, std::vector<uint32_t>& out) const;

  std::string keys_ = std::string(1, '\0');  // offset 0 is reserved for "empty"
  std::vector<Slot> slots_;
  size_t count_ = 0;
  std::vector<Hit> pair_hit_ = std::vector<Hit>(65536, Hit{kNoRank, 0});
  std::vector<uint32_t> byte_id_ = std::vector<uint32_t>(256, UINT32_MAX);
};

}  // namespace teddy
