// The model runs on the backend its Context names. A backend is a value, so a test can
// build one: a copy of the cpu table whose linear_forward / attention_forward count
// their calls shows every call of forward and of the KV decoder going through the
// table. And on the ref backend (plain loops, double accumulation) a whole
// forward + backward agrees with the cpu (OpenBLAS) and onednn (oneDNN fp32) backends'.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/model_f64.h"
#include "model/tiny_models.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/context.h"
#include "teddy/model/kv_decoder.h"
#include "teddy/model/model.h"

namespace {

using namespace teddy;
using namespace teddy::test;

// Counters of the counting backend (test-local: a function pointer carries no state).
std::atomic<int> linear_calls{0}, attention_calls{0};

void counting_linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                             int OC) {
  ++linear_calls;
  kernels::backend("cpu").linear_forward(out, inp, weight, bias, N, C, OC);
}

void counting_attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                                int NKV, int HS, kernels::Workspace ws) {
  ++attention_calls;
  kernels::backend("cpu").attention_forward(out, lse, qkv, seg, B, T, NH, NKV, HS, ws);
}

kernels::Backend counting_backend() {
  kernels::Backend b = kernels::backend("cpu");
  b.name = "counting";
  b.linear_forward = &counting_linear_forward;
  b.attention_forward = &counting_attention_forward;
  return b;
}

TEST(ModelBackend, EveryKernelCallGoesThroughTheContextsTable) {
  const kernels::Backend counting = counting_backend();
  const ModelConfig cfg = tiny_family(Family::llama);
  Model m(cfg, Context{.backend = &counting});
  EXPECT_EQ(m.context().backend, &counting);
  fill_random_params(m, 1);
  const int B = 2, T = 8;
  const TokenData d = random_token_data(cfg, B, T, 2);
  linear_calls = attention_calls = 0;
  m.forward(d.batch(B, T));
  // Four linears per block and the classifier (one chunk at these sizes); one attention per block.
  EXPECT_EQ(linear_calls, 4 * cfg.n_layer + 1);
  EXPECT_EQ(attention_calls, cfg.n_layer);

  linear_calls = attention_calls = 0;
  KvDecoder dec(m, 8, 4);
  const std::vector<int32_t> prompt = {1, 2, 3};
  dec.feed(prompt.data(), 3);
  EXPECT_EQ(linear_calls, 4 * cfg.n_layer + 1);  // KV attention is the decoder's own loop
  EXPECT_EQ(attention_calls, 0);
}

// fp32 forward + backward on ref vs cpu vs onednn, same weights and batch, each against the
// float64 twin (model/model_f64.h) under the rule: within twice a plain fp32
// implementation's distance (the twin storing and multiplying in float) + eps, the
// gradients per matrix with the vectors pooled, and the loss within 2 max |logits
// error| per target plus the cross-entropy kernel's rounding (test::loss_sum_bound).
// The backends differ in summation order and accumulation width (ref sums in double
// and rounds each op's result once, so it sits well inside the bound); a wrong op is
// off by O(1).
TEST(ModelBackend, RefCpuAndOnednnAgreeOnLossAndGradients) {
  for (Family f : {Family::gpt2, Family::llama}) {
    const ModelConfig cfg = tiny_family(f);
    SCOPED_TRACE(config_label(cfg));
    const int B = 2, T = 16, N = B * T;
    const TokenData d = random_token_data(cfg, B, T, 3);
    Model cpu(cfg), ref(cfg, Context{.backend = &kernels::backend("ref")}),
        dnn(cfg, Context{.backend = &kernels::backend("onednn")});
    fill_random_params(cpu, 4);
    std::copy(cpu.params(), cpu.params() + cpu.flat_size(), ref.params());
    std::copy(cpu.params(), cpu.params() + cpu.flat_size(), dnn.params());
    const float dloss = 1.0f / (B * T);
    const test::F64Pass tw = test::f64_pass(cpu, d.batch(B, T), true, true, dloss);
    const test::F64Pass pl = test::f32_plain_pass(cpu, d.batch(B, T), false, true, dloss);
    for (Model* m : {&cpu, &ref, &dnn}) {
      const std::string name = m->context().ops().name;
      SCOPED_TRACE(name);
      std::vector<float> z(static_cast<size_t>(N) * cfg.padded_vocab_size);
      m->forward(d.batch(B, T), z.data());
      const LossSum l = m->forward_backward(d.batch(B, T), dloss, kernels::Grad::set);
      EXPECT_EQ(l.count, tw.count);
      test::expect_within(std::fabs(l.sum - tw.loss_sum),
                          test::loss_sum_bound(z.data(), tw.logits.data(), d.targets.data(), N, cfg.vocab_size,
                                               cfg.padded_vocab_size, 2, tw.loss_sum),
                          name + " backend loss");
      test::expect_grads_within(*m, m->grads(), pl.grads.data(), tw.grads.data(), name + " backend");
    }
  }
}

}  // namespace

namespace {

// Under bf16 on onednn-bf16 the model does not round the matmul weights itself (the
// GEMMs round their inputs to bf16, and rounding a rounded value changes nothing). The
// same GEMMs on a table that does not declare its rounding (gemm_inputs = f32, so the
// model rounds the weights first) give the same loss and gradients, bit for bit.
TEST(ModelBackend, Bf16GemmsSkipTheWeightRoundingExactly) {
  const kernels::Backend* bf16 = nullptr;
  for (const kernels::Backend* b : kernels::available_backends())
    if (std::string(b->name) == "onednn-bf16") bf16 = b;
  if (!bf16) GTEST_SKIP() << "no native bf16 on this CPU (onednn-bf16 absent)";
  kernels::Backend undeclared = *bf16;
  undeclared.gemm_inputs = DType::f32;
  for (Family f : {Family::gpt2, Family::llama}) {
    const ModelConfig cfg = tiny_family(f);
    SCOPED_TRACE(config_label(cfg));
    const int B = 2, T = 16;
    const TokenData d = random_token_data(cfg, B, T, 5);
    Model a(cfg, Context{.backend = bf16}), b(cfg, Context{.backend = &undeclared});
    fill_random_params(a, 6);
    std::copy(a.params(), a.params() + a.flat_size(), b.params());
    a.set_precision(Precision::bf16);
    b.set_precision(Precision::bf16);
    const LossSum la = a.forward_backward(d.batch(B, T), 1.0f / (B * T), kernels::Grad::set);
    const LossSum lb = b.forward_backward(d.batch(B, T), 1.0f / (B * T), kernels::Grad::set);
    EXPECT_EQ(la.sum, lb.sum);
    EXPECT_EQ(0, std::memcmp(a.grads(), b.grads(), a.flat_size() * sizeof(float)));
  }
}

}  // namespace

namespace {

// The bf16 weight copy of onednn-bf16 under bf16 is derived state, rewritten from the
// fp32 masters by every forward: after the masters change (as an optimizer step, a
// checkpoint load or a ZeRO-3 gather changes them) the next call gives exactly what a
// fresh model built from the new masters gives, in every recompute mode; and the
// copy is what the model reports as its 16-bit weights (2 bytes per matmul weight).
TEST(ModelBackend, Bf16WeightCopyFollowsTheMasters) {
  const kernels::Backend* bf16 = nullptr;
  for (const kernels::Backend* b : kernels::available_backends())
    if (std::string(b->name) == "onednn-bf16") bf16 = b;
  if (!bf16) GTEST_SKIP() << "no native bf16 on this CPU (onednn-bf16 absent)";
  for (Family f : {Family::gpt2, Family::llama}) {
    const ModelConfig cfg = tiny_family(f);
    SCOPED_TRACE(config_label(cfg));
    const int B = 2, T = 16;
    const TokenData d = random_token_data(cfg, B, T, 7);
    for (Recompute rc : {Recompute::none, Recompute::attention, Recompute::block}) {
      SCOPED_TRACE(recompute_name(rc));
      Model a(cfg, Context{.backend = bf16});
      fill_random_params(a, 8);
      a.set_precision(Precision::bf16);
      a.set_recompute(rc);
      a.forward_backward(d.batch(B, T), 1.0f / (B * T), kernels::Grad::set);
      EXPECT_EQ(a.weight_scratch_bytes(), Model::weight_scratch_bytes_for(cfg, Precision::bf16, *bf16));
      // New masters, different in their bf16 rounding too.
      for (size_t i = 0; i < a.flat_size(); ++i) a.params()[i] = a.params()[i] * 1.03f + 1e-3f;
      const LossSum la = a.forward_backward(d.batch(B, T), 1.0f / (B * T), kernels::Grad::set);
      Model b(cfg, Context{.backend = bf16});
      std::copy(a.params(), a.params() + a.flat_size(), b.params());
      b.set_precision(Precision::bf16);
      const LossSum lb = b.forward_backward(d.batch(B, T), 1.0f / (B * T), kernels::Grad::set);
      EXPECT_EQ(la.sum, lb.sum);
      EXPECT_EQ(0, std::memcmp(a.grads(), b.grads(), a.flat_size() * sizeof(float)));
      // forward alone (evaluation) reads refreshed weights too.
      for (size_t i = 0; i < a.flat_size(); ++i) a.params()[i] *= 0.97f;
      std::copy(a.params(), a.params() + a.flat_size(), b.params());
      EXPECT_EQ(a.forward(d.batch(B, T)).sum, b.forward(d.batch(B, T)).sum);
    }
  }
}

}  // namespace
