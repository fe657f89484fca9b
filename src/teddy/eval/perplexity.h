#pragma once
// Perplexity by lm-evaluation-harness's loglikelihood_rolling: a document's tokens
// are cut into windows of the model's context L; the first window is read after one
// <|endoftext|>, each later one after the token before it, so every token is
// predicted exactly once (make_disjoint_window with context_len 1).
#include <cstdint>
#include <vector>

#include "teddy/eval/loglikelihood.h"

namespace teddy {

// The requests whose log-likelihoods sum to the document's (prefix: <|endoftext|>'s id).
std::vector<LoglikRequest> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix, int max_len);

}  // namespace teddy
