#pragma once
// Reference softmax cross-entropy over padded logits: plain loops, double
// accumulation. See ops.inc for the contract (ignore_index rows, padding,
// dlogits set not added, dlogits may alias logits).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "teddy/core/error.h"

namespace teddy::kernels::ref {

// Throws teddy::Error unless every target is ignore_index or in [0, V).
inline void crossentropy_check_targets(const int32_t* targets, int N, int V, int ignore_index) {
  for (int i = 0; i < N; ++i) {
    const int32_t t = targets[i];
    if (t != ignore_index && (t < 0 || t >= V))
      throw Error("crossentropy: targets[" + std::to_string(i) + "] = " + std::to_string(t) +
                  " is outside [0, " + std::to_string(V) + ") and is not ignore_index (" +
                  std::to_string(ignore_index) + ")");
  }
}

// logits(N,Vp), targets(N), losses(N); dlogits(N,Vp) or nullptr. Returns sum(losses).
template <class T>
double crossentropy_forward_backward_t(T* losses, T* dlogits, const T* logits, const int32_t* targets,
                                       int N, int V, int Vp, int ignore_index, double dloss) {
  crossentropy_check_targets(targets, N, V, ignore_index);
  double total = 0.0;
  for (int i = 0; i < N; ++i) {
    const T* x = logits + static_cast<int64_t>(i) * Vp;  // (Vp)
    T* dx = dlogits ? dlogits + static_cast<int64_t>(i) * Vp : nullptr;
    const int32_t t = targets[i];
    if (t == ignore_index) {
      losses[i] = T(0);
      if (dx)
        for (int j = 0; j < Vp; ++j) dx[j] = T(0);
      continue;
    }
    double m = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < V; ++j) m = std::max(m, static_cast<double>(x[j]));
    double s = 0.0;
    for (int j = 0; j < V; ++j) s += std::exp(static_cast<double>(x[j]) - m);
    const double loss = std::log(s) + m - static_cast<double>(x[t]);
    losses[i] = static_cast<T>(loss);
    total += loss;
    if (dx) {
      // Element-wise read then write of the same index, so aliasing is safe.
      for (int j = 0; j < V; ++j) {
        const double p = std::exp(static_cast<double>(x[j]) - m) / s;
        dx[j] = static_cast<T>(dloss * (p - (j == t ? 1.0 : 0.0)));
      }
      for (int j = V; j < Vp; ++j) dx[j] = T(0);
    }
  }
  return total;
}

}  // namespace teddy::kernels::ref
