// kernels::ref linear over a quantized weight: one row of W dequantized at a time,
// then ref/linear.h's double-accumulating loops on that row.
#include <vector>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void linear_forward_q(float* out, const float* inp, const QuantWeight* w, const float* bias, int N, int C, int OC) {
  std::vector<float> row(static_cast<size_t>(C));
  for (int o = 0; o < OC; ++o) {
    dequantize_rows(*w, C, o, 1, row.data());
    for (int n = 0; n < N; ++n) {
      double acc = bias ? static_cast<double>(bias[o]) : 0.0;
      for (int c = 0; c < C; ++c) acc += static_cast<double>(inp[static_cast<int64_t>(n) * C + c]) * row[c];
      out[static_cast<int64_t>(n) * OC + o] = static_cast<float>(acc);
    }
  }
}

void linear_backward_q(float* dinp, const float* dout, const QuantWeight* w, int N, int C, int OC, Grad dinp_mode) {
  std::vector<double> acc(static_cast<size_t>(N) * C, 0.0);
  std::vector<float> row(static_cast<size_t>(C));
  for (int o = 0; o < OC; ++o) {
    dequantize_rows(*w, C, o, 1, row.data());
    for (int n = 0; n < N; ++n) {
      const double d = dout[static_cast<int64_t>(n) * OC + o];
      for (int c = 0; c < C; ++c) acc[static_cast<size_t>(n) * C + c] += d * row[c];
    }
  }
  for (size_t i = 0; i < acc.size(); ++i)
    dinp[i] = static_cast<float>((dinp_mode == Grad::set ? 0.0 : static_cast<double>(dinp[i])) + acc[i]);
}

}  // namespace teddy::kernels::ref
