#pragma once
// Generation as lm-evaluation-harness's generate_until: continue a text prompt until
// a stop sequence appears (the text from it on is dropped), the end-of-text token,
// or max_new_tokens. A prompt too long for the model keeps its last tokens (lm-eval
// keeps L - max_new_tokens; teddy keeps at least half the context so a short-context
// model still sees the question).
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/model/generate.h"
#include "teddy/model/model.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

struct GenerateUntilResult {
  std::string text;           // the completion, cut before the first stop sequence
  int prompt_tokens = 0;      // tokens the model read
  int dropped_tokens = 0;     // prompt tokens cut from the left to fit
  int new_tokens = 0;
};

// Throws Error for a prompt that encodes to nothing.
GenerateUntilResult generate_until(Model& model, const Tokenizer& tok, const std::string& prompt,
                                   const std::vector<std::string>& stops, int max_new_tokens,
                                   const SamplingOptions& sampling);

// The text up to the first occurrence of any stop sequence (all of it if none).
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stops);

}  // namespace teddy
