#pragma once
// kernels::onednn: the cpu backend with its linear products on oneDNN matmul
// primitives (onednn/linear.cpp), in fp32 (table "onednn") or with bf16 inputs and fp32
// accumulation (table "onednn-bf16", only where the CPU computes bf16 natively). Every
// other op is cpu's: they read the same host memory.
#include "teddy/kernels/kernels.h"

namespace teddy::kernels::onednn {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode);
void linear_forward_bf16(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
void linear_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode);

// The quantized linears with bf16 products (onednn/linear_q.cpp; onednn-bf16's entries).
void linear_forward_q_bf16(float* out, const float* inp, const QuantWeight* w, const float* bias, int N, int C,
                           int OC);
void linear_backward_q_bf16(float* dinp, const float* dout, const QuantWeight* w, int N, int C, int OC,
                            Grad dinp_mode);

// The bf16 table's linear16 ops: bf16 operands straight into the bf16 matmuls.
void linear16_forward(float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16, const float* bias,
                      int N, int C, int OC);
void linear16_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                       Grad param_mode);

void linear16_forward_f32(float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16,
                          const float* bias, int N, int C, int OC);
void linear16_backward_f32(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                           const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                           Grad param_mode);

const Backend& table();       // "onednn"
const Backend& bf16_table();  // "onednn-bf16"

}  // namespace teddy::kernels::onednn
