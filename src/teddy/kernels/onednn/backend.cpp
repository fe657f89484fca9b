// The onednn backends' tables: cpu's table with the linear entries replaced.
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

namespace teddy::kernels::onednn {

const Backend& table() {
  static const Backend t = [] {
    Backend b = cpu::table();
    b.name = "onednn";
    b.summary = "cpu with the linear GEMMs on oneDNN matmul primitives (fp32)";
    b.linear_forward = &onednn::linear_forward;
    b.linear_backward = &onednn::linear_backward;
    b.linear16_forward = &onednn::linear16_forward_f32;
    b.linear16_backward = &onednn::linear16_backward_f32;
    return b;
  }();
  return t;
}

const Backend& bf16_table() {
  static const Backend t = [] {
    Backend b = cpu::table();
    b.name = "onednn-bf16";
    b.summary = "cpu with the linear GEMMs (quantized bases included) on oneDNN bf16 x bf16 -> fp32 matmuls (inputs rounded to bf16, or given in bf16)";
    b.gemm_inputs = DType::bf16;
    b.linear_forward = &onednn::linear_forward_bf16;
    b.linear_backward = &onednn::linear_backward_bf16;
    b.linear_forward_q = &onednn::linear_forward_q_bf16;
    b.linear_backward_q = &onednn::linear_backward_q_bf16;
    b.linear16_forward = &onednn::linear16_forward;
    b.linear16_backward = &onednn::linear16_backward;
    return b;
  }();
  return t;
}

}  // namespace teddy::kernels::onednn
