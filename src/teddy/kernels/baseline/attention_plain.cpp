#include "teddy/kernels/baseline/attention_plain.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "teddy/core/buffer.h"
#include "teddy/kernels/cpu/attention_tile.h"
#include "teddy/kernels/ref/attention.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // see attention_tile.h

namespace teddy::kernels::baseline {
namespace {

using namespace cpu::tile;  // the cpu backend's vector helpers (vectorised exp)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Head {
  const float *q, *k, *v;  // rows of stride R
  float *dq, *dk, *dv;     // likewise, into dqkv (nullptr in forward)
  const float* dO;         // rows of stride C
  float* o;
  float* lse;              // (T)
  const int32_t* seg;      // (T) or nullptr
  int T, HS;
  int64_t R, C;
  float scale;
};

Head make_head(const float* qkv, const int32_t* seg, int b, int h, int T, int NH, int NKV, int HS) {
  Head x{};
  const int g = h / (NH / NKV);
  x.R = static_cast<int64_t>(NH + 2 * NKV) * HS;
  x.C = static_cast<int64_t>(NH) * HS;
  const float* base = qkv + static_cast<int64_t>(b) * T * x.R;
  x.q = base + static_cast<int64_t>(h) * HS;
  x.k = base + static_cast<int64_t>(NH + g) * HS;
  x.v = base + static_cast<int64_t>(NH + NKV + g) * HS;
  x.seg = seg ? seg + static_cast<int64_t>(b) * T : nullptr;
  x.T = T;
  x.HS = HS;
  x.scale = 1.0f / std::sqrt(static_cast<float>(HS));
  return x;
}

// S = scale * Q K^T, the full (T, T).
void scores(float* S, const Head& x) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, x.T, x.T, x.HS, x.scale, x.q, x.R, x.k, x.R, 0.0f, S, x.T);
}

// Sets keys that row i may not see (j > i, other document) to -inf; returns i+1,
// the length of the row's visible prefix.
int mask_row(float* s, const int32_t* seg, int i) {
  if (seg)
    for (int j = 0; j <= i; ++j) s[j] = seg[j] == seg[i] ? s[j] : kNegInf;
  return i + 1;
}

// p = exp(s - sub) over [0, n), vectorised with a scalar tail; returns the sum.
float exp_prefix(float* s, int n, float sub) {
  const v16 vs = splat(sub);
  v16 acc{};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const v16 p = exp16(load(s + j) - vs);
    store(s + j, p);
    acc += p;
  }
  float sum = hsum(acc);
  for (; j < n; ++j) { s[j] = exp1(s[j] - sub); sum += s[j]; }
  return sum;
}

// Row-wise masked softmax of S in place; writes lse.
void softmax_rows(float* P, const Head& x) {
  const int T = x.T;
#pragma omp parallel for schedule(dynamic, 16) if (T >= 256)
  for (int i = 0; i < T; ++i) {
    float* s = P + static_cast<int64_t>(i) * T;
    const int n = mask_row(s, x.seg, i);
    float mx = kNegInf;
    for (int j = 0; j < n; ++j) mx = std::max(mx, s[j]);  // finite: s[i] is visible
    const float sum = exp_prefix(s, n, mx);
    const float inv = 1.0f / sum;
    for (int j = 0; j < n; ++j) s[j] *= inv;
    std::fill(s + n, s + T, 0.0f);
    x.lse[i] = mx + std::log(sum);
  }
}

// P = exp(S - lse) in place, 0 where masked (recompute from the forward's lse).
void probs_from_lse(float* P, const Head& x, const float* lse) {
  const int T = x.T;
#pragma omp parallel for schedule(dynamic, 16) if (T >= 256)
  for (int i = 0; i < T; ++i) {
    float* s = P + static_cast<int64_t>(i) * T;
    const int n = mask_row(s, x.seg, i);
    exp_prefix(s, n, lse[i]);
    std::fill(s + n, s + T, 0.0f);
  }
}

void forward_head(float* P, const Head& x) {
  scores(P, x);
  softmax_rows(P, x);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, x.T, x.HS, x.T, 1.0f, P, x.T, x.v, x.R, 0.0f, x.o, x.C);
}

// Gradients of one head from its P; dS is (T, T) scratch.
void backward_head(float* dS, const float* P, const Head& x) {
  const int T = x.T;
  // dP = dO V^T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, x.HS, 1.0f, x.dO, x.C, x.v, x.R, 0.0f, dS, T);
#pragma omp parallel for schedule(dynamic, 16) if (T >= 256)
  for (int i = 0; i < T; ++i) {
    const float* p = P + static_cast<int64_t>(i) * T;
    float* ds = dS + static_cast<int64_t>(i) * T;
    const int n = i + 1;  // P is 0 beyond the diagonal
    float D = 0;
    for (int j = 0; j < n; ++j) D += p[j] * ds[j];
    for (int j = 0; j < n; ++j) ds[j] = p[j] * (ds[j] - D);
    std::fill(ds + n, ds + T, 0.0f);
  }
  // dV += P^T dO; dQ += scale dS K; dK += scale dS^T Q
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, x.HS, T, 1.0f, P, T, x.dO, x.C, 1.0f, x.dv, x.R);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, x.HS, T, x.scale, dS, T, x.k, x.R, 1.0f, x.dq, x.R);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, x.HS, T, x.scale, dS, T, x.q, x.R, 1.0f, x.dk, x.R);
}

void bind_outputs(Head& x, float* out, float* lse, int b, int h, int T, int NH) {
  x.o = out + static_cast<int64_t>(b) * T * x.C + static_cast<int64_t>(h) * x.HS;
  x.lse = lse + (static_cast<int64_t>(b) * NH + h) * T;
}

// dqkv has qkv's layout: each gradient sits at its input's offset.
void bind_grads(Head& x, float* dqkv, const float* dout, const float* qkv, int b, int h, int T) {
  x.dq = dqkv + (x.q - qkv);
  x.dk = dqkv + (x.k - qkv);
  x.dv = dqkv + (x.v - qkv);
  x.dO = dout + static_cast<int64_t>(b) * T * x.C + static_cast<int64_t>(h) * x.HS;
}

}  // namespace

void attention_plain_forward(float* out, float* lse, float* att, const float* qkv, const int32_t* seg, int B, int T,
                             int NH, int NKV, int HS) {
  ref::attention_check_dims(B, T, NH, NKV, HS);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      Head x = make_head(qkv, seg, b, h, T, NH, NKV, HS);
      bind_outputs(x, out, lse, b, h, T, NH);
      forward_head(att + (static_cast<int64_t>(b) * NH + h) * T * T, x);
    }
}

void attention_plain_backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                              int B, int T, int NH, int NKV, int HS) {
  ref::attention_check_dims(B, T, NH, NKV, HS);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {  // serial: query heads of a group add into the same dK, dV
      Head x = make_head(qkv, nullptr, b, h, T, NH, NKV, HS);
      bind_grads(x, dqkv, dout, qkv, b, h, T);
      backward_head(datt, att + (static_cast<int64_t>(b) * NH + h) * T * T, x);
    }
}

void attention_plain_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                             int NKV, int HS) {
  ref::attention_check_dims(B, T, NH, NKV, HS);
  AlignedBuffer P(static_cast<size_t>(T) * T * sizeof(float));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      Head x = make_head(qkv, seg, b, h, T, NH, NKV, HS);
      bind_outputs(x, out, lse, b, h, T, NH);
      forward_head(P.as<float>(), x);
    }
}

void attention_plain_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                              const int32_t* seg, int B, int T, int NH, int NKV, int HS) {
  ref::attention_check_dims(B, T, NH, NKV, HS);
  const size_t tt = static_cast<size_t>(T) * T;
  AlignedBuffer P(tt * sizeof(float)), dS(tt * sizeof(float));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      Head x = make_head(qkv, seg, b, h, T, NH, NKV, HS);
      bind_grads(x, dqkv, dout, qkv, b, h, T);
      scores(P.as<float>(), x);
      probs_from_lse(P.as<float>(), x, lse + (static_cast<int64_t>(b) * NH + h) * T);
      backward_head(dS.as<float>(), P.as<float>(), x);
    }
}

}  // namespace teddy::kernels::baseline
