// kernels::ref attention: the float instantiation of ref/attention.h. It needs no
// workspace (one score row per call, allocated inside).
#include "teddy/kernels/ref/attention.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

size_t attention_forward_workspace(int B, int T, int NH, int NKV, int HS, int threads) {
  attention_check_dims(B, T, NH, NKV, HS);
  return 0;
}

size_t attention_backward_workspace(int B, int T, int NH, int NKV, int HS, int threads) {
  attention_check_dims(B, T, NH, NKV, HS);
  return 0;
}

void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH, int NKV,
                       int HS, Workspace) {
  attention_forward_t<float>(out, lse, qkv, seg, B, T, NH, NKV, HS);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int32_t* seg, int B, int T, int NH, int NKV, int HS, Grad mode, Workspace) {
  attention_backward_t<float>(dqkv, dout, qkv, out, lse, seg, B, T, NH, NKV, HS, mode == Grad::set);
}

}  // namespace teddy::kernels::ref
