#pragma once
// FlashAttention on the CPU (Dao et al. 2022, with v2's loop order): the ops.inc
// kernels::cpu::attention_forward/backward run these in the caller's Workspace when it
// holds the floats below (attention_*_workspace return them), else in scratch they
// allocate for the call. The *_flash_* forms take the scratch directly and choose the
// backward's work split (tests and the kernel benchmarks in bench/ call them).
//
// Memory (floats, G = NH/NKV query heads per kv head, HSp = HS rounded up to 16):
//  forward:  per thread a few kFlashBlock x HSp tiles; shared, K and V of the kv
//            heads in flight packed contiguous, 2 * T * HSp per head, as many heads
//            as fit in 8 MB (at least one, more if needed to keep threads busy);
//  backward: per thread the tiles, plus the scaled Q, dO, D = rowsum(dO * O) of one
//            kv head's query heads packed contiguous and a dQ accumulator:
//            about 3 * G * T * HSp.
// Linear in T, never T x T.
#include <cstddef>
#include <cstdint>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

constexpr int kFlashBlock = 64;  // query rows and key columns per tile

// How backward avoids races on dK/dV (owned by one task per key block) and dQ:
//  by_group:     one task per (b, kv head) does all its key blocks; it owns its dQ rows.
//  by_key_block: (b, kv head) in turn, key blocks spread over threads; per-thread dQ
//                partials summed in thread order afterwards (deterministic).
//  automatic:    by_group when it keeps all threads busy, else by_key_block.
enum class FlashBackwardSplit : uint8_t { automatic, by_group, by_key_block };

// Scratch floats needed with `threads` OpenMP threads (0: omp_get_max_threads()).
size_t attention_flash_forward_scratch_floats(int B, int T, int NH, int NKV, int HS, int threads = 0);
size_t attention_flash_backward_scratch_floats(int B, int T, int NH, int NKV, int HS, int threads = 0);

// Same contract as ops.inc attention_forward / attention_backward. scratch: at least
// the floats above for omp_get_max_threads() threads (throws Error otherwise), any
// contents, 64-byte alignment preferred. Backward writes every element of dqkv exactly
// once, so `mode` Grad::set overwrites it (no zeroing pass before); Grad::add adds.
void attention_flash_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                             int NKV, int HS, float* scratch, size_t scratch_floats);
void attention_flash_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                              const float* lse, const int32_t* seg, int B, int T, int NH, int NKV, int HS,
                              float* scratch, size_t scratch_floats,
                              FlashBackwardSplit split = FlashBackwardSplit::automatic, Grad mode = Grad::add);

}  // namespace teddy::kernels::cpu
