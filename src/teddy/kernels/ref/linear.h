#pragma once
// Reference linear layer (PyTorch nn.Linear layout): plain loops over any scalar
// type with double accumulation. The double instantiation is the ground truth
// for finite-difference tests; the float one backs kernels::ref.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace teddy::kernels::ref {

// out(N,OC) = inp(N,C) @ weight(OC,C)^T + bias(OC); bias may be nullptr.
template <class T>
void linear_forward_t(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
  for (int n = 0; n < N; ++n) {
    const T* x = inp + static_cast<int64_t>(n) * C;  // (C)
    for (int o = 0; o < OC; ++o) {
      const T* w = weight + static_cast<int64_t>(o) * C;  // (C)
      double acc = bias ? static_cast<double>(bias[o]) : 0.0;
      for (int c = 0; c < C; ++c) acc += static_cast<double>(x[c]) * static_cast<double>(w[c]);
      out[static_cast<int64_t>(n) * OC + o] = static_cast<T>(acc);
    }
  }
}

// dinp(N,C) += dout @ weight; dweight(OC,C) += dout^T @ inp; dbias(OC) += colsum(dout).
// dinp, dweight and dbias may each be nullptr (not needed). set_dinp: dinp = dout @ weight;
// set_params: dweight, dbias = their products (no accumulation).
template <class T>
void linear_backward_t(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, int N,
                       int C, int OC, bool set_dinp = false, bool set_params = false) {
  std::vector<double> acc(static_cast<size_t>(C));  // one row of sums, contiguous inner loops
  if (dinp) {
    for (int n = 0; n < N; ++n) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int o = 0; o < OC; ++o) {
        const double d = static_cast<double>(dout[static_cast<int64_t>(n) * OC + o]);
        const T* w = weight + static_cast<int64_t>(o) * C;
        for (int c = 0; c < C; ++c) acc[c] += d * static_cast<double>(w[c]);
      }
      T* dx = dinp + static_cast<int64_t>(n) * C;
      for (int c = 0; c < C; ++c) dx[c] = static_cast<T>((set_dinp ? 0.0 : static_cast<double>(dx[c])) + acc[c]);
    }
  }
  if (dweight) {
    for (int o = 0; o < OC; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int n = 0; n < N; ++n) {
        const double d = static_cast<double>(dout[static_cast<int64_t>(n) * OC + o]);
        const T* x = inp + static_cast<int64_t>(n) * C;
        for (int c = 0; c < C; ++c) acc[c] += d * static_cast<double>(x[c]);
      }
      T* dw = dweight + static_cast<int64_t>(o) * C;
      for (int c = 0; c < C; ++c) dw[c] = static_cast<T>((set_params ? 0.0 : static_cast<double>(dw[c])) + acc[c]);
    }
  }
  if (dbias) {
    for (int o = 0; o < OC; ++o) {
      double s = 0.0;
      for (int n = 0; n < N; ++n) s += static_cast<double>(dout[static_cast<int64_t>(n) * OC + o]);
      dbias[o] = static_cast<T>((set_params ? 0.0 : static_cast<double>(dbias[o])) + s);
    }
  }
}

}  // namespace teddy::kernels::ref
