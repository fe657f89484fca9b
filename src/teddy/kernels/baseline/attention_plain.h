#pragma once
// The standard (unfused) attention on the CPU, kept as the yardstick `teddy bench
// attention` and the attention tests measure a backend's attention against. It is not
// an op of any backend (no table holds it), hence its own namespace. Per
// (b, h), S = Q K^T / sqrt(HS) over the full T x T with cblas_sgemm (causality only
// masks, it saves no work), masked softmax in place, O = P V. Backward the same way
// with dP = dO V^T and dS = P * (dP - rowsum(P * dP)). Memory O(T^2).
// Heads run one after another; each sgemm and the row loops use all OpenMP threads.
#include <cstdint>

namespace teddy::kernels::baseline {

// Caller-provided matrices (what a framework keeps for autograd):
//  att (B, NH, T, T): written by forward with the probabilities P (0 where masked),
//                     read by backward.
//  datt (T, T):       backward scratch for dP and dS of one (b, h) at a time.
// Backward needs no seg: the mask is already in att's zeros.
void attention_plain_forward(float* out, float* lse, float* att, const float* qkv, const int32_t* seg, int B,
                             int T, int NH, int NKV, int HS);
void attention_plain_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                              int B, int T, int NH, int NKV, int HS);

// The ops.inc contract (backward adds, like Grad::add; no workspace): these allocate
// per call, forward one (T, T) matrix reused across heads (P is not kept), backward
// two (T, T) matrices, recomputing each head's P from lse.
void attention_plain_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                             int NKV, int HS);
void attention_plain_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                              const float* lse, const int32_t* seg, int B, int T, int NH, int NKV, int HS);

}  // namespace teddy::kernels::baseline
