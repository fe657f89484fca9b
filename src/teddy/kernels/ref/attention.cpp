#include "teddy/kernels/ref/attention.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH, int NKV,
                       int HS) {
  attention_forward_t<float>(out, lse, qkv, seg, B, T, NH, NKV, HS);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int32_t* seg, int B, int T, int NH, int NKV, int HS) {
  attention_backward_t<float>(dqkv, dout, qkv, out, lse, seg, B, T, NH, NKV, HS);
}

}  // namespace teddy::kernels::ref
