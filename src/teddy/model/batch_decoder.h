#pragma once
// Several sequences decoded together over one loaded base, each with its own KV cache,
// positions and LoRA adapter (or none), as S-LoRA and punica serve many adapters: a
// step feeds one token for each live sequence, the base linears run as one GEMM over
// all the step's rows, and each row's adapter delta uses its own sequence's A and B,
// read from per-adapter buffers (nothing is copied into params()). Adjacent rows with
// the same adapter share one lora_forward call, so a caller that orders the live
// sequences by adapter pays one thin GEMM pair per adapter and linear.
// Prompts of different lengths are prefilled one sequence at a time (feed).
#include <array>
#include <cstdint>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/model/model.h"
#include "teddy/model/model_impl.h"

namespace teddy {

class BatchDecoder {
 public:
  // n_seq sequence slots of `capacity` positions each (<= max_seq_len); max_rows: most
  // rows in one call (a prompt's length in feed, the sequences in step). adapters: flat
  // adapter buffers laid out as model.layout() (only for a model with LoRA), indexed
  // by start(); the caller keeps them alive (their values may change between calls).
  // All memory is allocated here, none per call.
  BatchDecoder(Model& model, int n_seq, int capacity, int max_rows, std::vector<const float*> adapters = {});

  // Empties slot seq for a new sequence decoded with adapters[adapter] (-1: the base alone).
  void start(int seq, int adapter);
  // Runs tokens[0..n) of sequence seq at its positions length(seq) .. +n-1 (a prompt,
  // or one more token). Returns the (padded_vocab_size) logits of the last one.
  const float* feed(int seq, const int32_t* tokens, int n);
  // One token for each of the distinct sequences seqs[0..m), as one batch of m rows.
  // Returns (m, padded_vocab_size) logits, row i for seqs[i]. Both are valid until the next call.
  const float* step(const int* seqs, const int32_t* tokens, int m);

  int length(int seq) const { return len_.at(seq); }
  int adapter(int seq) const { return adapter_.at(seq); }
  int sequences() const { return n_seq_; }
  int capacity() const { return cap_; }
  size_t cache_bytes() const { return cache_.bytes(); }

 private:
  // A run of rows of one sequence at consecutive positions (feed: one of n rows; step: m of one row).
  struct Segment {
    int seq, row0, n;
  };
  Model& model_;
  model_detail::ParamOffsets off_;
  int n_seq_, cap_, max_rows_, n_threads_;
  std::vector<int> len_, adapter_;
  std::vector<const float*> adapter_sets_;
  AlignedBuffer cache_;  // per sequence, per layer: K (cap, NKV*HS) then V (cap, NKV*HS)
  Arena scratch_;
  // Scratch views (max_rows rows).
  int32_t* pos_ = nullptr;
  int* row_adapter_ = nullptr;
  float *x_, *ln_, *mean_, *rstd_, *qkv_, *att_, *tmp_, *up_, *act_, *logits_, *scores_;
  void carve(Arena& a);
  // LoRA: per layer and linear, the adapter's offsets in a flat adapter buffer (P = 0: not adapted).
  struct Adapter {
    size_t a = 0, b = 0;
    const int* parts = nullptr;
    int P = 0;
  };
  std::vector<std::array<Adapter, kLoraLinears>> adapters_;
  std::vector<std::vector<int>> part_cols_;
  float* lora_u_ = nullptr;  // (max_rows, 3r)
  void check_seq(int seq, const char* what) const;
  // The blocks over rows [0, n) made of segs_; logits for the last row (all_logits
  // false) or for every row.
  std::vector<Segment> segs_;
  const float* run(const int32_t* tokens, int n, bool all_logits);
  void linear(float* out, const float* in, const float* w, const float* b, int n, int C, int OC, int layer,
              LoraLinear which);
};

}  // namespace teddy
