#pragma once
// Learns byte-level BPE merges from a corpus.
//
// Text is pre-tokenized with the chosen pattern (special-token text is cut out
// first and never merged across), identical pieces are counted once with their
// frequency, and then the most frequent adjacent pair is merged again and again.
// Ties go to the pair with the smallest (left id, right id), so the result depends
// only on the corpus. Pair counts are updated incrementally: a merge touches only
// the words that contain the pair (an index from pair to words), and a lazy
// max-heap of counts finds the next pair.
//
// The tokenizer keeps the merge list, so encoding applies exactly the training
// merges (Hugging Face's rule; see BpeVocab::merges).
//
// Ids: bytes are 0..255 (id = byte value), each merge that makes new bytes takes
// the next id (256, 257, ...), and the specials follow. A merge whose bytes already
// are a token (e.g. "ab"+"c" after "a"+"bc") reuses that id, as Hugging Face does.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "teddy/tokenizer/pretokenizer.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

struct BpeMerge {
  uint32_t left, right, id;  // left + right -> id
  int64_t count;             // pair frequency when merged
};

struct BpeTrainOptions {
  int vocab_size = 0;  // total ids: 256 bytes + merges + specials
  PretokenizerKind pattern = PretokenizerKind::gpt2;
  std::vector<std::string> specials = {"<|endoftext|>"};
};

class BpeTrainer {
 public:
  // Throws ConfigError if vocab_size < 256 + specials.
  explicit BpeTrainer(BpeTrainOptions options);

  // Counts the pieces of `text` (may be called many times, e.g. once per file).
  void add_text(std::string_view text);
  // Adds `count` occurrences of one piece, as if pre-tokenization had produced it.
  void add_piece(std::string_view piece, uint64_t count = 1);

  // Merges until vocab_size - specials tokens exist (fewer if the corpus runs out
  // of pairs) and returns the tokenizer.
  Tokenizer train();

  // After train(): the merges in the order learned.
  const std::vector<BpeMerge>& merges() const { return merges_; }
  size_t unique_pieces() const { return counts_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  BpeTrainOptions options_;
  Pretokenizer pre_;
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> counts_;
  std::vector<BpeMerge> merges_;
};

}  // namespace teddy
