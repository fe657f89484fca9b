// kernels::onednn linear: the three products of a linear layer (and the classifier
// head, which is one) as cached oneDNN matmuls (matmul.h), transposes through strides,
// `add` gradients through the sum post-op, the forward bias as the primitive's bias.
// The bias gradient stays cpu's deterministic column sum. Two namespaces share this
// code: onednn (fp32 products) and onednn_bf16 (inputs rounded to bf16, fp32
// accumulation). linear16_*: the bf16 table's ops on operands the caller already holds
// in bf16 (ops.inc), handed to the same primitives as bits.
#include "teddy/kernels/linear16_widen.h"
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

namespace teddy::kernels::onednn {

namespace {

void forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC, bool bf16) {
  if (N <= 0 || OC <= 0 || C <= 0) return cpu::linear_forward(out, inp, weight, bias, N, C, OC);
  // out(N,OC) = inp(N,C) @ weight(OC,C)^T: B(k,n) = weight[n*C + k]
  matmul({.M = N, .N = OC, .K = C, .a = inp, .a_sm = C, .a_sk = 1, .b = weight, .b_sk = 1, .b_sn = C, .c = out,
          .bias = bias, .accumulate = false, .bf16 = bf16});
}

void backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
              int N, int C, int OC, Grad dinp_mode, Grad param_mode, bool bf16) {
  if (N <= 0 || OC <= 0 || C <= 0)
    return cpu::linear_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, dinp_mode, param_mode);
  // dinp(N,C) (+)= dout(N,OC) @ weight(OC,C)
  if (dinp)
    matmul({.M = N, .N = C, .K = OC, .a = dout, .a_sm = OC, .a_sk = 1, .b = weight, .b_sk = C, .b_sn = 1,
            .c = dinp, .accumulate = dinp_mode == Grad::add, .bf16 = bf16});
  // dweight(OC,C) (+)= dout(N,OC)^T @ inp(N,C): A(m,k) = dout[k*OC + m]
  if (dweight)
    matmul({.M = OC, .N = C, .K = N, .a = dout, .a_sm = 1, .a_sk = OC, .b = inp, .b_sk = C, .b_sn = 1,
            .c = dweight, .accumulate = param_mode == Grad::add, .bf16 = bf16});
  if (dbias) cpu::linear_backward(nullptr, nullptr, dbias, dout, inp, weight, N, C, OC, dinp_mode, param_mode);
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
  forward(out, inp, weight, bias, N, C, OC, false);
}
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode) {
  backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, dinp_mode, param_mode, false);
}

void linear_forward_bf16(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                         int OC) {
  forward(out, inp, weight, bias, N, C, OC, true);
}
void linear_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, int N, int C, int OC, Grad dinp_mode, Grad param_mode) {
  backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, dinp_mode, param_mode, true);
}

// The fp32 table: its own fp32 products on the widened values (linear16_widen.h).
void linear16_forward_f32(float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16,
                          const float* bias, int N, int C, int OC) {
  linear16_forward_widened(&onednn::linear_forward, out, inp, inp16, weight16, bias, N, C, OC);
}
void linear16_backward_f32(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                           const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                           Grad param_mode) {
  linear16_backward_widened(&onednn::linear_backward, dinp, dweight, dbias, dout, inp, inp16, weight16, N, C, OC,
                            dinp_mode, param_mode);
}

void linear16_forward(float* out, const float* inp, const uint16_t* inp16, const uint16_t* weight16, const float* bias,
                      int N, int C, int OC) {
  if (N <= 0 || OC <= 0 || C <= 0)
    return linear16_forward_widened(&cpu::linear_forward, out, inp, inp16, weight16, bias, N, C, OC);
  // The same primitive as linear_forward_bf16 (same key): the same products, bit for bit.
  matmul({.M = N, .N = OC, .K = C, .a = inp, .a_sm = C, .a_sk = 1, .b = nullptr, .b_sk = 1, .b_sn = C, .c = out,
          .bias = bias, .accumulate = false, .bf16 = true, .a16 = inp16, .b16 = weight16});
}

void linear16_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const uint16_t* inp16, const uint16_t* weight16, int N, int C, int OC, Grad dinp_mode,
                       Grad param_mode) {
  if (N <= 0 || OC <= 0 || C <= 0)
    return linear16_backward_widened(&cpu::linear_backward, dinp, dweight, dbias, dout, inp, inp16, weight16, N, C,
                                     OC, dinp_mode, param_mode);
  // dout rounded once, read by both products (linear_backward_bf16 rounds it per product).
  const uint16_t* d16 = dinp || dweight ? round_shared(dout, static_cast<size_t>(N) * OC) : nullptr;
  if (dinp)
    matmul({.M = N, .N = C, .K = OC, .a = nullptr, .a_sm = OC, .a_sk = 1, .b = nullptr, .b_sk = C, .b_sn = 1,
            .c = dinp, .accumulate = dinp_mode == Grad::add, .bf16 = true, .a16 = d16, .b16 = weight16});
  if (dweight)
    matmul({.M = OC, .N = C, .K = N, .a = nullptr, .a_sm = 1, .a_sk = OC, .b = inp, .b_sk = C, .b_sn = 1,
            .c = dweight, .accumulate = param_mode == Grad::add, .bf16 = true, .a16 = d16, .b16 = inp16});
  if (dbias) cpu::linear_backward(nullptr, nullptr, dbias, dout, nullptr, nullptr, N, C, OC, dinp_mode, param_mode);
}

}  // namespace teddy::kernels::onednn
