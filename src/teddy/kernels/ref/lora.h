#pragma once
// Reference LoRA update and dropout: plain loops over any scalar type with double
// accumulation. The double instantiation is the ground truth for finite-difference
// tests; the float one backs kernels::ref. Semantics: ops.inc ("lora").
//
// One adapted linear, out(N, OC), input x(N, C), rank r, P parts. Part p adds
//   out[:, off_p .. off_p + n_p) += scale * (x A_p^T) B_p^T
// with A_p rows [p*r, (p+1)*r) of A (P*r, C) and B_p rows [b_p, b_p + n_p) of
// B (sum n, r), b_p = n_0 + .. + n_{p-1}. parts = {off_0, n_0, off_1, n_1, ...}.
// u(N, P*r) = x A^T is kept for backward.
#include <cstdint>
#include <vector>

#include "teddy/kernels/dropout_mask.h"

namespace teddy::kernels::ref {

template <class T>
void lora_forward_t(T* out, T* u, const T* x, const T* A, const T* B, int N, int C, int OC, int r, int P,
                    const int* parts, float scale) {
  const int R = P * r;
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < R; ++j) {
      double acc = 0;
      for (int c = 0; c < C; ++c)
        acc += static_cast<double>(x[static_cast<int64_t>(n) * C + c]) * static_cast<double>(A[static_cast<int64_t>(j) * C + c]);
      u[static_cast<int64_t>(n) * R + j] = static_cast<T>(acc);
    }
  int brow = 0;
  for (int p = 0; p < P; ++p) {
    const int off = parts[2 * p], np = parts[2 * p + 1];
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < np; ++o) {
        double acc = 0;
        for (int k = 0; k < r; ++k)
          acc += static_cast<double>(u[static_cast<int64_t>(n) * R + p * r + k]) *
                 static_cast<double>(B[static_cast<int64_t>(brow + o) * r + k]);
        T& y = out[static_cast<int64_t>(n) * OC + off + o];
        y = static_cast<T>(static_cast<double>(y) + static_cast<double>(scale) * acc);
      }
    brow += np;
  }
  (void)OC;
}

// du(N, P*r) = scale * dout_p B_p (scratch, overwritten); dB_p (+)= scale * dout_p^T u_p;
// dA (+)= du^T x; dx (+)= du A (dx may be nullptr). set_*: overwrite instead of add.
template <class T>
void lora_backward_t(T* dx, T* dA, T* dB, T* du, const T* dout, const T* x, const T* u, const T* A, const T* B,
                     int N, int C, int OC, int r, int P, const int* parts, float scale, bool set_dx,
                     bool set_params) {
  const int R = P * r;
  const double s = scale;
  int brow = 0;
  for (int p = 0; p < P; ++p) {
    const int off = parts[2 * p], np = parts[2 * p + 1];
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < r; ++k) {
        double acc = 0;
        for (int o = 0; o < np; ++o)
          acc += static_cast<double>(dout[static_cast<int64_t>(n) * OC + off + o]) *
                 static_cast<double>(B[static_cast<int64_t>(brow + o) * r + k]);
        du[static_cast<int64_t>(n) * R + p * r + k] = static_cast<T>(s * acc);
      }
    for (int o = 0; o < np; ++o)
      for (int k = 0; k < r; ++k) {
        double acc = 0;
        for (int n = 0; n < N; ++n)
          acc += static_cast<double>(dout[static_cast<int64_t>(n) * OC + off + o]) *
                 static_cast<double>(u[static_cast<int64_t>(n) * R + p * r + k]);
        T& g = dB[static_cast<int64_t>(brow + o) * r + k];
        g = static_cast<T>((set_params ? 0.0 : static_cast<double>(g)) + s * acc);
      }
    brow += np;
  }
  for (int j = 0; j < R; ++j)
    for (int c = 0; c < C; ++c) {
      double acc = 0;
      for (int n = 0; n < N; ++n)
        acc += static_cast<double>(du[static_cast<int64_t>(n) * R + j]) * static_cast<double>(x[static_cast<int64_t>(n) * C + c]);
      T& g = dA[static_cast<int64_t>(j) * C + c];
      g = static_cast<T>((set_params ? 0.0 : static_cast<double>(g)) + acc);
    }
  if (dx)
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        double acc = 0;
        for (int j = 0; j < R; ++j)
          acc += static_cast<double>(du[static_cast<int64_t>(n) * R + j]) * static_cast<double>(A[static_cast<int64_t>(j) * C + c]);
        T& g = dx[static_cast<int64_t>(n) * C + c];
        g = static_cast<T>((set_dx ? 0.0 : static_cast<double>(g)) + acc);
      }
}

// out[i] = keep(seed, i) ? inp[i] / (1 - p) : 0.
template <class T>
void dropout_forward_t(T* out, const T* inp, int64_t n, float p, uint64_t seed) {
  const uint32_t thr = dropout_threshold(p);
  const double keep_scale = 1.0 / (1.0 - static_cast<double>(p));
  for (int64_t i = 0; i < n; ++i)
    out[i] = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? static_cast<T>(static_cast<double>(inp[i]) * keep_scale) : T(0);
}

// dinp[i] (+)= keep(seed, i) ? dout[i] / (1 - p) : 0.
template <class T>
void dropout_backward_t(T* dinp, const T* dout, int64_t n, float p, uint64_t seed, bool set) {
  const uint32_t thr = dropout_threshold(p);
  const double keep_scale = 1.0 / (1.0 - static_cast<double>(p));
  for (int64_t i = 0; i < n; ++i) {
    const double d = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? static_cast<double>(dout[i]) * keep_scale : 0.0;
    dinp[i] = static_cast<T>((set ? 0.0 : static_cast<double>(dinp[i])) + d);
  }
}

}  // namespace teddy::kernels::ref
