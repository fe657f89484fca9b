#pragma once
// Incremental inference with a KV cache: feed tokens (a whole prompt, then one at a
// time); each call appends keys (after RoPE) and values per layer and returns the
// logits of the last token fed. Batch size 1: one sequence of a BatchDecoder
// (model/batch_decoder.h, several sequences each with its own adapter). A model with
// LoRA adapters decodes them unmerged (over a fp32 or quantized base), reading them
// from model.params(): swapping adapters is writing other values there, the base is
// never reloaded.
#include <cstdint>

#include "teddy/model/batch_decoder.h"
#include "teddy/model/model.h"

namespace teddy {

class KvDecoder {
 public:
  // capacity: positions the cache holds (<= max_seq_len); max_rows: most tokens fed in
  // one call (the prompt length). All memory is allocated here, none per step.
  KvDecoder(Model& model, int capacity, int max_rows);

  // Runs tokens[0..n) at positions length() .. length()+n-1. Returns the
  // (padded_vocab_size) logits of the last one; valid until the next call.
  const float* feed(const int32_t* tokens, int n) { return dec_.feed(0, tokens, n); }
  int length() const { return dec_.length(0); }
  int capacity() const { return dec_.capacity(); }
  size_t cache_bytes() const { return dec_.cache_bytes(); }

 private:
  BatchDecoder dec_;
};

}  // namespace teddy
