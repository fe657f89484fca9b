#pragma once
// Log-likelihood of continuations given contexts, as lm-evaluation-harness computes
// it: the model reads (context + continuation)[-(L+1):][:-1] (L = the model's
// context) in one forward pass and the continuation's tokens are scored from the
// logits at its positions. Requests whose model input is the same token sequence
// share one row (MMLU's " A".." D" after one prompt cost one row, not four); rows are
// sorted by length and batched, right-padded (causal attention: padding after a
// position cannot change it).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

struct LoglikRequest {
  std::vector<int32_t> context, continuation;  // continuation non-empty
};

struct LoglikResult {
  double logprob = 0;   // sum of log p(continuation token | everything before)
  bool greedy = false;  // every continuation token was the argmax
};

struct LoglikOptions {
  int max_batch = 16;                    // rows per forward pass
  size_t max_logit_bytes = size_t(256) << 20;  // bound on B * T * padded_vocab * 4
};

// lm-eval's _encode_pair: trailing whitespace of the context moves to the front of
// the continuation; the continuation's tokens are those of encode(context +
// continuation) past encode(context)'s length. An empty context is one <|endoftext|>.
// Throws Error when the continuation encodes to no tokens.
std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const Tokenizer& tok, std::string_view context,
                                                                  std::string_view continuation);

// Scores every request; progress(done, total) after each batch. Throws Error for a
// token outside the model's vocabulary or a continuation longer than the model's
// context.
std::vector<LoglikResult> score_loglikelihood(Model& model, std::span<const LoglikRequest> requests,
                                              const LoglikOptions& opt = {},
                                              const std::function<void(size_t, size_t)>& progress = {});

}  // namespace teddy
