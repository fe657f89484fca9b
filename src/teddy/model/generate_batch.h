#pragma once
// Batched generation over one loaded base, each request with its own LoRA adapter (or
// none): up to `batch` sequences decode together on a BatchDecoder (one base GEMM per
// linear over all of a step's rows, each row's adapter delta its own), with continuous
// batching: a finished sequence's slot takes the next waiting request.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "teddy/model/generate.h"
#include "teddy/model/model.h"

namespace teddy {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int adapter = -1;          // index into the adapters given to generate_batch; -1: the base alone
  int max_new_tokens = 200;
};

// Answers every request; result i holds request i's generated tokens, with the same
// rules as generate() (a stop token ends it and is included; at most max_seq_len -
// prompt tokens). Each request samples with its own Sampler seeded opts.seed, so it
// draws what generate() alone would draw from the same logits. adapters: flat adapter
// buffers laid out as model.layout() (a model with LoRA; read_peft_adapter_into fills
// them). Requests are admitted in order and the live ones stepped ordered by adapter.
// on_done(i, tokens), if set, is called as request i finishes. Throws Error naming the
// request for an empty or too long prompt, an adapter index out of range, ids outside
// the vocabulary; ConfigError for bad sampling options or batch < 1.
std::vector<std::vector<int32_t>> generate_batch(
    Model& model, std::span<const GenerationRequest> requests, std::span<const float* const> adapters, int batch,
    const SamplingOptions& opts, const std::function<void(size_t, std::span<const int32_t>)>& on_done = {});

}  // namespace teddy
