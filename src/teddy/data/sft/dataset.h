#pragma once
// SFT examples rendered through a chat template into token sequences with a loss
// mask, cut to the context. An example of n tokens occupies n-1 positions of a
// training row (inputs tokens[0..n-2], targets tokens[1..n-1]), so with a context of
// seq_len positions an example may hold seq_len + 1 tokens.
//
// Truncation of longer examples:
//   right  keep the first seq_len + 1 tokens (the default; the end of a long answer is lost)
//   left   keep the last seq_len + 1 tokens (the start of a long prompt is lost)
//   drop   leave the example out
// An example left without any loss token after cutting is dropped too. Every case
// is counted (SftDatasetStats) so a run reports what the context did to its data.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/format.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

enum class SftTruncation { right, left, drop };
std::string_view sft_truncation_name(SftTruncation t);
SftTruncation sft_truncation_from_name(std::string_view name, std::string_view field = "train.truncation");

struct SftDatasetOptions {
  int seq_len = 256;  // positions per training row
  SftTruncation truncation = SftTruncation::right;
  bool train_on_inputs = false;
};

struct SftDatasetStats {
  uint64_t examples = 0;          // kept
  uint64_t truncated = 0;         // kept, but cut to seq_len + 1 tokens
  uint64_t dropped_too_long = 0;  // truncation = drop
  uint64_t dropped_no_loss = 0;   // cutting removed every loss token
  uint64_t tokens = 0;            // over kept examples, after cutting
  uint64_t loss_tokens = 0;
  uint64_t longest = 0;           // tokens of the longest example before cutting
  std::string summary() const;    // one line for logs
};

class SftDataset {
 public:
  SftDataset() = default;
  // Throws Error if seq_len < 1, or if the tokenizer lacks the template's specials.
  SftDataset(std::span<const SftExample> examples, const Tokenizer& tok, const ChatTemplate& tmpl,
             const SftDatasetOptions& opt);

  size_t size() const { return seqs_.size(); }
  const ChatTokens& operator[](size_t i) const { return seqs_[i]; }
  size_t positions(size_t i) const { return seqs_[i].tokens.size() - 1; }  // row slots it needs
  uint32_t source_index(size_t i) const { return source_[i]; }  // index into the examples given
  int seq_len() const { return opt_.seq_len; }
  const SftDatasetStats& stats() const { return stats_; }

 private:
  SftDatasetOptions opt_;
  std::vector<ChatTokens> seqs_;
  std::vector<uint32_t> source_;
  SftDatasetStats stats_;
};

// Deterministic train/validation split by content: example i is held out when a hash
// of its turns falls below `fraction` (so the split does not move when lines are
// reordered or added). Returns (train, val).
std::pair<std::vector<SftExample>, std::vector<SftExample>> split_sft_examples(std::vector<SftExample> all,
                                                                               double fraction);

}  // namespace teddy
