#pragma once
// Causal attention of a few new query rows against a KV cache (the decode path).
#include <cstdint>

namespace teddy {

// n query rows at positions start .. start+n-1; row i attends to cache positions
// 0 .. start+i (their keys and values must already be in the cache).
//   q:      row i, head h at q + i*q_stride + h*HS       (NH heads)
//   k, v:   position j, kv head g at k + j*kv_stride + g*HS (NKV heads; GQA: h reads h/(NH/NKV))
//   out:    (n, NH*HS)
// scratch: n_threads rows of scratch_stride >= start+n floats (one score row per
// thread); at most n_threads OpenMP threads are used. Scale 1/sqrt(HS).
void kv_attention_forward(float* out, const float* q, int q_stride, const float* k, const float* v,
                          int kv_stride, int n, int start, int NH, int NKV, int HS, float* scratch,
                          int scratch_stride, int n_threads);

}  // namespace teddy
