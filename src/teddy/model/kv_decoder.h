#pragma once
// Incremental inference with a KV cache: feed tokens (a whole prompt, then one at a
// time); each call appends keys (after RoPE) and values per layer and returns the
// logits of the last token fed. Batch size 1. A model with LoRA adapters decodes them
// unmerged (over a fp32 or quantized base): swapping adapters is writing other values
// into model.params(), the base is never reloaded.
#include <array>
#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/model/model.h"
#include "teddy/model/model_impl.h"

namespace teddy {

class KvDecoder {
 public:
  // capacity: positions the cache holds (<= max_seq_len); max_rows: most tokens fed in
  // one call (the prompt length). All memory is allocated here, none per step.
  KvDecoder(Model& model, int capacity, int max_rows);

  // Runs tokens[0..n) at positions length() .. length()+n-1. Returns the
  // (padded_vocab_size) logits of the last one; valid until the next call.
  const float* feed(const int32_t* tokens, int n);
  int length() const { return len_; }
  int capacity() const { return cap_; }
  size_t cache_bytes() const { return cache_.bytes(); }

 private:
  Model& model_;
  model_detail::ParamOffsets off_;
  int cap_, max_rows_, len_ = 0, n_threads_;
  AlignedBuffer cache_;    // per layer: K (cap, NKV*HS) then V (cap, NKV*HS)
  Arena scratch_;
  // Scratch views (max_rows rows).
  int32_t* pos_ = nullptr;
  float *x_, *ln_, *mean_, *rstd_, *qkv_, *att_, *tmp_, *up_, *act_, *logits_, *scores_;
  void carve(Arena& a);
  // LoRA: per layer and linear, the adapter's offsets in params() (A absent: none).
  struct Adapter {
    size_t a = 0, b = 0;
    const int* parts = nullptr;
    int P = 0;
  };
  std::vector<std::array<Adapter, kLoraLinears>> adapters_;
  std::vector<std::vector<int>> part_cols_;
  float* lora_u_ = nullptr;  // (max_rows, 3r)
  void linear(float* out, const float* in, const float* w, const float* b, int n, int C, int OC, int layer,
              LoraLinear which);
};

}  // namespace teddy
