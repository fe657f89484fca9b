#pragma once
// Exact-match accuracy of a chat model on SFT examples: for each example, the turns
// before its last assistant turn are rendered as a generation prompt (chat template),
// the model decodes greedily until the end-of-turn token, and the reply counts as
// correct when it equals the reference (the last assistant turn), both with leading
// and trailing whitespace trimmed. Accuracy is also broken down by the examples'
// task labels.
#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/format.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"

namespace teddy {

struct ExactMatchOptions {
  int max_new_tokens = 64;  // per reply (also bounded by the model's context)
  size_t limit = 0;         // evaluate only the first `limit` examples; 0: all
};

struct ExactMatchSample {
  std::string task, prompt, reference, reply;
  bool correct = false;
};

struct ExactMatchResult {
  size_t total = 0, correct = 0;
  std::map<std::string, std::pair<size_t, size_t>> by_task;  // task -> (correct, total)
  std::vector<ExactMatchSample> samples;                     // every example, in order
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

// Throws Error if the tokenizer lacks the template's specials or a prompt does not
// fit the model's context. on_done(i, sample), if set, is called after each example.
ExactMatchResult sft_exact_match(Model& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                                 std::span<const SftExample> examples, const ExactMatchOptions& opt,
                                 const std::function<void(size_t, const ExactMatchSample&)>& on_done = {});

// Leading and trailing ASCII whitespace removed.
std::string trim_whitespace(std::string_view s);

}  // namespace teddy
