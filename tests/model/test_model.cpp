// Model forward/backward: loss at init, gradients against finite differences for
// every tensor, micro-batch accumulation, packed sequences, padding, validation.
// (The strict, element-by-element check against PyTorch lives in tests/reference.)
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/core/error.h"
#include "teddy/core/profiler.h"
#include "teddy/model/model.h"
#include "teddy/model/model_impl.h"  // even_chunk_rows
#include "model/tiny_models.h"
#include "model/model_f64.h"

namespace teddy {
namespace {

// Tiny configs with a padded vocabulary (500 real ids, 512 rows).
ModelConfig tiny(const char* preset) { return test::tiny_preset(preset); }
ModelConfig llama_tied_bias() {
  ModelConfig c = tiny("llama-tiny");
  c.n_head = 4;  // head_dim 8, 4 query heads over 2 kv heads
  c.n_kv_head = 2;
  c.tie_embeddings = true;
  c.bias = true;
  return c;
}
// Qwen2's shape (q/k/v biases alone) with Llama 3.1's RoPE scaling at a short original
// context: head_dim 16, theta 1e4 gives wavelengths 6.3, 19.9, 62.8, ... against
// 64/4 = 16 and 64/1 = 64, so one frequency is kept, two interpolated, five divided.
ModelConfig llama_qkv_bias_rope_scaled() {
  ModelConfig c = tiny("llama-tiny");
  c.qkv_bias = true;
  c.rope_scaling.type = RopeScaling::Type::llama3;
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 64;
  return c;
}
std::vector<ModelConfig> all_configs() {
  return {tiny("gpt2-tiny"), tiny("llama-tiny"), llama_tied_bias(), llama_qkv_bias_rope_scaled()};
}

std::string label(const ModelConfig& c) { return test::config_label(c); }

void fill_random(Model& m, uint64_t seed) { test::fill_random_params(m, seed); }

using Data = test::TokenData;
using test::random_token_data;

std::vector<float> grads_of(const Model& m) { return {m.grads(), m.grads() + m.flat_size()}; }

TEST(Model, LossAtInitIsLogVocab) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    m.init_weights(7);
    const Data d = random_token_data(c, 4, 32, 3);
    const LossSum loss = m.forward(d.batch(4, 32));
    EXPECT_EQ(loss.count, 4 * 32);
    // Not rounding: at init (weights N(0, 0.02^2), C = 32) the logits are ~N(0, 0.013),
    // so the loss is log 500 + ~0.006, give or take sampling; 0.05 is 8x that.
    EXPECT_NEAR(loss.mean(), std::log(500.0), 0.05);
  }
}

TEST(Model, InitWeights) {
  Model a(tiny("gpt2-tiny")), b(tiny("gpt2-tiny")), c(tiny("gpt2-tiny"));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  a.init_weights(42);
  omp_set_num_threads(std::max(2, threads));
  b.init_weights(42);
  omp_set_num_threads(threads);
  c.init_weights(43);
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.flat_size(), b.params()))
      << "init depends on the thread count";
  EXPECT_FALSE(std::equal(a.params(), a.params() + a.flat_size(), c.params()));
  const ModelConfig& cfg = a.config();
  auto stddev = [](const float* p, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
    return std::sqrt(s / n);
  };
  const ParamInfo& wte = a.layout().find("tok_emb.weight");
  const float* w = a.param("tok_emb.weight");
  // Sampling, not rounding: a standard deviation estimated from n draws is off by
  // ~sigma / sqrt(2n): 1.1e-4 here (n = 16000), 2.2e-4 and 1.1e-4 below (n = 1024 and
  // 4096 at sigma 0.01); the bounds are 9, 2.7 and 2.7 of those. The seed is fixed and
  // the generator is teddy's own, so the draws are the same on every machine.
  EXPECT_NEAR(stddev(w, static_cast<size_t>(cfg.vocab_size) * cfg.d_model), 0.02, 0.001);
  EXPECT_TRUE(std::all_of(w + static_cast<size_t>(cfg.vocab_size) * cfg.d_model, w + wte.numel,
                          [](float x) { return x == 0.0f; }))
      << "padded vocabulary rows must start at 0";
  const ParamInfo& proj = a.layout().find("layers.1.attn.proj.weight");
  EXPECT_NEAR(stddev(a.params() + proj.offset, proj.numel), 0.02 / std::sqrt(4.0), 0.0006);
  const ParamInfo& down = a.layout().find("layers.0.mlp.down.weight");
  EXPECT_NEAR(stddev(a.params() + down.offset, down.numel), 0.01, 0.0003);
  for (const ParamInfo& p : a.layout().params) {
    const float* x = a.params() + p.offset;
    if (p.name.find(".bias") != std::string::npos) {
      EXPECT_TRUE(std::all_of(x, x + p.numel, [](float v) { return v == 0.0f; })) << p.name;
    } else if (p.name.find("norm") != std::string::npos) {
      EXPECT_TRUE(std::all_of(x, x + p.numel, [](float v) { return v == 1.0f; })) << p.name;
    }
  }
}

TEST(Model, ForwardLossEqualsForwardBackwardLossAndLogitsPath) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    fill_random(m, 11);
    const Data d = random_token_data(c, 3, 20, 5, 7);
    const LossSum f = m.forward(d.batch(3, 20));
    std::vector<float> logits(static_cast<size_t>(3) * 20 * c.padded_vocab_size);
    const LossSum fl = m.forward(d.batch(3, 20), logits.data());
    m.zero_grad();
    const LossSum fb = m.forward_backward(d.batch(3, 20), 1.0f);
    EXPECT_EQ(f.count, 60 - 9);  // every 7th of 60 targets ignored
    EXPECT_EQ(fb.count, f.count);
    EXPECT_EQ(fl.count, f.count);
    EXPECT_DOUBLE_EQ(fb.sum, f.sum);  // the same code (chunked classifier) in the same order
    // Both paths against the float64 twin (model/model_f64.h): within 2 max |logits error|
    // per target of the twin's loss plus the cross-entropy kernel's rounding
    // (test::loss_sum_bound); the chunked path's logits are another fp32 evaluation of
    // the explicit ones, taken as erring at most twice as much. The explicit logits
    // themselves: within twice a plain fp32 implementation's distance from float64.
    const int N = 60, V = c.vocab_size, Vp = c.padded_vocab_size;
    const test::F64Pass tw = test::f64_pass(m, d.batch(3, 20), true, false);
    const test::F64Pass pl = test::f32_plain_pass(m, d.batch(3, 20), true, false);
    const test::Dist dz = test::dist(logits.data(), pl.logits.data(), tw.logits.data(), logits.size());
    test::expect_rule(dz, "logits");
    test::expect_within(std::fabs(fl.sum - tw.loss_sum),
                        test::loss_sum_bound(logits.data(), tw.logits.data(), d.targets.data(), N, V, Vp, 1, tw.loss_sum),
                        "loss from explicit logits");
    test::expect_within(std::fabs(f.sum - tw.loss_sum),
                        test::loss_sum_bound(logits.data(), tw.logits.data(), d.targets.data(), N, V, Vp, 2, tw.loss_sum),
                        "loss of forward");
    // The loss from the explicit logits, recomputed here in double: the same logits, so
    // only the kernel's own rounding separates them.
    double want = 0;
    for (int i = 0; i < N; ++i) {
      if (d.targets[i] == kIgnoreIndex) continue;
      const float* row = logits.data() + static_cast<size_t>(i) * Vp;
      const double mx = *std::max_element(row, row + V);
      double s = 0;
      for (int v = 0; v < V; ++v) s += std::exp(row[v] - mx);
      want += std::log(s) + mx - row[d.targets[i]];
    }
    const std::vector<double> same(logits.begin(), logits.end());
    test::expect_within(std::fabs(fl.sum - want),
                        test::loss_sum_bound(logits.data(), same.data(), d.targets.data(), N, V, Vp, 1, want),
                        "loss against its logits in double");
    // Forward only, no targets: no loss.
    Batch nt = d.batch(3, 20);
    nt.targets = nullptr;
    const LossSum none = m.forward(nt, logits.data());
    EXPECT_EQ(none.count, 0);
    EXPECT_EQ(none.sum, 0.0);
  }
}

// The gradient of the mean loss, in two links: teddy's against the float64 twin
// (model/model_f64.h) under the rule (within twice a plain fp32 implementation's
// distance, per matrix, vectors pooled), and the twin's against central finite
// differences of its own forward in double, on the largest-gradient entries and a few
// fixed ones of every tensor, which makes it the gradient of this model's loss.
//   Finite differences: with x +- h (h = 1e-4 max(1, |x|), as floats), the error of
// fd(h) is c h^2 + O(h^4) (truncation) plus the double rounding of the two losses over
// 2h; fd(2h) - fd(h) = 3 c h^2 + O(h^4), so |fd(h) - g| <= |fd(2h) - fd(h)| + rounding,
// the rounding of a loss being at most (C + V + N) eps64 |loss| (the longest chains of
// operations behind one loss term, linear worst case) for each of the four losses.
TEST(Model, GradientsMatchFiniteDifferences) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    fill_random(m, 100);
    const int B = 2, T = 9;
    const Data d = random_token_data(c, B, T, 21, 5);
    const Batch b = d.batch(B, T);
    m.zero_grad();
    const LossSum base = m.forward_backward(b, 1.0f);
    const float dloss = 1.0f / static_cast<float>(base.count);
    m.zero_grad();
    m.forward_backward(b, dloss);
    const std::vector<float> g = grads_of(m);
    const test::F64Pass tw = test::f64_pass(m, b, false, true, dloss);
    const test::F64Pass pl = test::f32_plain_pass(m, b, false, true, dloss);
    test::expect_grads_within(m, g.data(), pl.grads.data(), tw.grads.data(), "teddy against the float64 twin");

    std::vector<float> x(m.params(), m.params() + m.flat_size());
    auto loss_at = [&](size_t k, float v) {
      const float keep = x[k];
      x[k] = v;
      const double l = test::f64_pass(m, x.data(), b, false, false).loss_sum * dloss;
      x[k] = keep;
      return l;
    };
    const double rounding = (c.d_model + c.vocab_size + B * T) * test::kEpsF64 * tw.loss_sum * dloss;
    for (const ParamInfo& p : m.layout().params) {
      SCOPED_TRACE(p.name);
      const double* gp = tw.grads.data() + p.offset;
      double gmax = 0;
      for (size_t i = 0; i < p.numel; ++i) gmax = std::max(gmax, std::fabs(gp[i]));
      ASSERT_GT(gmax, 1e-4) << "gradient vanishes: the check would be vacuous";
      std::vector<size_t> idx(p.numel);
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + 2, idx.end(),
                        [&](size_t a, size_t b) { return std::fabs(gp[a]) > std::fabs(gp[b]); });
      idx.resize(2);
      idx.push_back(p.numel / 3);
      idx.push_back(p.numel - 1);
      for (size_t i : idx) {
        const size_t k = p.offset + i;
        const float x0 = x[k];
        auto fd = [&](double step) {
          const float xp = static_cast<float>(x0 + step), xm = static_cast<float>(x0 - step);
          return std::pair{(loss_at(k, xp) - loss_at(k, xm)) / (static_cast<double>(xp) - xm),
                           static_cast<double>(xp) - xm};
        };
        const double h = 1e-4 * std::max(1.0f, std::fabs(x0));
        const auto [f1, w1] = fd(h);
        const auto [f2, w2] = fd(2 * h);
        test::expect_within(std::fabs(gp[i] - f1), std::fabs(f2 - f1) + 2 * rounding / w1 + 2 * rounding / w2,
                            "twin gradient vs finite differences, " + p.name + "[" + std::to_string(i) + "]");
      }
    }
    // Padded vocabulary rows never receive gradient.
    const std::string head = c.tie_embeddings ? "tok_emb.weight" : "lm_head.weight";
    const ParamInfo& w = m.layout().find(head);
    const float* gw = g.data() + w.offset;
    EXPECT_TRUE(std::all_of(gw + static_cast<size_t>(c.vocab_size) * c.d_model, gw + w.numel,
                            [](float v) { return v == 0.0f; }));
  }
}

// Two micro-batches with dloss = 1 / (all non-ignored targets) accumulate to the
// gradient of one big batch, even when the ignore mask leaves them uneven.
TEST(Model, MicroBatchesAccumulateToBigBatch) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    fill_random(m, 5);
    const int B = 4, T = 16;
    Data d = random_token_data(c, B, T, 9);
    for (int i = 0; i < 2 * T; i += 2) d.targets[i] = kIgnoreIndex;  // rows 0-1: half ignored
    d.targets[3 * T + 5] = kIgnoreIndex;
    m.zero_grad();
    const LossSum big = m.forward_backward(d.batch(B, T), 1.0f / (B * T - T - 1));
    const std::vector<float> g_big = grads_of(m);
    m.zero_grad();
    const LossSum l1 = m.forward_backward(d.batch(2, T, 0), 1.0f / (B * T - T - 1));
    const LossSum l2 = m.forward_backward(d.batch(2, T, 2), 1.0f / (B * T - T - 1));
    const std::vector<float> g_acc = grads_of(m);
    EXPECT_EQ(big.count, B * T - T - 1);
    EXPECT_EQ(l1.count + l2.count, big.count);
    EXPECT_EQ(l1.count, T);
    // Both against the float64 twin (model/model_f64.h): the losses within 2 max |logits
    // error| per target (forward_backward's chunked classifier: twice that of the explicit
    // logits) plus the kernel's rounding; the gradients within twice a plain fp32
    // implementation's distance (per matrix, vectors pooled).
    const float dl = 1.0f / (B * T - T - 1);
    const test::F64Pass tw = test::f64_pass(m, d.batch(B, T), true, true, dl);
    const test::F64Pass pl = test::f32_plain_pass(m, d.batch(B, T), false, true, dl);
    std::vector<float> z(static_cast<size_t>(B) * T * c.padded_vocab_size);
    m.forward(d.batch(B, T), z.data());
    const double lb = test::loss_sum_bound(z.data(), tw.logits.data(), d.targets.data(), B * T, c.vocab_size,
                                           c.padded_vocab_size, 2, tw.loss_sum);
    test::expect_within(std::fabs(big.sum - tw.loss_sum), lb, "big batch loss");
    test::expect_within(std::fabs(l1.sum + l2.sum - tw.loss_sum), lb, "micro-batch losses");
    test::expect_grads_within(m, g_big.data(), pl.grads.data(), tw.grads.data(), "big batch");
    test::expect_grads_within(m, g_acc.data(), pl.grads.data(), tw.grads.data(), "two micro-batches");
    // Same inputs twice: bitwise the same gradient (deterministic for a thread count).
    m.zero_grad();
    m.forward_backward(d.batch(B, T), 1.0f / (B * T - T - 1));
    EXPECT_TRUE(std::equal(g_big.begin(), g_big.end(), m.grads()));
  }
}

// Grad::set on garbage gradients (NaN everywhere, padding included) gives exactly what
// zero_grad() + add gives, for one and for two micro-batches (set, then add), in every
// family (tied and untied heads, with and without biases) and in bf16.
TEST(Model, SetParamGradsEqualsZeroGradThenAdd) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const ModelConfig& c : all_configs()) {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
      SCOPED_TRACE(label(c) + (p == Precision::fp32 ? " fp32" : " bf16"));
      Model m(c);
      m.set_precision(p);
      fill_random(m, 7);
      const int B = 4, T = 16;
      const Data d = random_token_data(c, B, T, 11, 5);
      const float dloss = 1.0f / (B * T);
      m.zero_grad();
      m.forward_backward(d.batch(2, T, 0), dloss);
      const std::vector<float> one = grads_of(m);
      m.forward_backward(d.batch(2, T, 2), dloss);
      const std::vector<float> two = grads_of(m);
      std::fill(m.grads(), m.grads() + m.flat_size(), nan);
      m.forward_backward(d.batch(2, T, 0), dloss, kernels::Grad::set);
      EXPECT_EQ(grads_of(m), one);  // operator== on floats: NaN left anywhere fails
      m.forward_backward(d.batch(2, T, 2), dloss, kernels::Grad::add);
      EXPECT_EQ(grads_of(m), two);
    }
  }
}

// Two documents packed in one row (seg ids, positions restarting) give the same
// logits, losses and gradients as each document in its own batch.
TEST(Model, PackedDocumentsMatchSeparateRuns) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    fill_random(m, 77);
    const int TA = 10, TB = 6, T = TA + TB, Vp = c.padded_vocab_size;
    const Data d = random_token_data(c, 1, T, 31);
    std::vector<int32_t> pos(T), seg(T);
    for (int t = 0; t < T; ++t) {
      pos[t] = t < TA ? t : t - TA;
      seg[t] = t < TA ? 0 : 1;
    }
    Batch packed = d.batch(1, T);
    packed.pos = pos.data();
    packed.seg = seg.data();
    std::vector<float> logits_packed(static_cast<size_t>(T) * Vp), logits_sep(static_cast<size_t>(T) * Vp);
    const LossSum lp = m.forward(packed, logits_packed.data());
    Batch a;
    a.tokens = d.tokens.data();
    a.targets = d.targets.data();
    a.B = 1;
    a.T = TA;
    Batch b = a;
    b.tokens += TA;
    b.targets += TA;
    b.T = TB;
    const LossSum la = m.forward(a, logits_sep.data());
    const LossSum lb = m.forward(b, logits_sep.data() + static_cast<size_t>(TA) * Vp);
    // Against the float64 twin (model/model_f64.h) of the separate runs, the exact value
    // of both: the packed row may err at most twice as much as running each document
    // alone does (the rule; per matrix, vectors pooled, for the gradients); each loss
    // within 2 max |logits error| per target of the twin's plus the kernel's rounding.
    const test::F64Pass ta = test::f64_pass(m, a, true, true, 0.1), tb = test::f64_pass(m, b, true, true, 0.1);
    std::vector<double> z64(ta.logits);
    z64.insert(z64.end(), tb.logits.begin(), tb.logits.end());
    const test::Dist dz = test::dist(logits_packed.data(), logits_sep.data(), z64.data(), z64.size());
    test::expect_rule(dz, "packed logits (plain: separate runs)");
    const double l64 = ta.loss_sum + tb.loss_sum;
    test::expect_within(std::fabs(lp.sum - l64),
                        test::loss_sum_bound(logits_packed.data(), z64.data(), d.targets.data(), T, c.vocab_size, Vp, 1, l64),
                        "packed loss");
    test::expect_within(std::fabs(la.sum + lb.sum - l64),
                        test::loss_sum_bound(logits_sep.data(), z64.data(), d.targets.data(), T, c.vocab_size, Vp, 1, l64),
                        "separate losses");
    m.zero_grad();
    m.forward_backward(packed, 0.1f);
    const std::vector<float> g_packed = grads_of(m);
    m.zero_grad();
    m.forward_backward(a, 0.1f);
    m.forward_backward(b, 0.1f);
    std::vector<double> g64(ta.grads);
    for (size_t i = 0; i < g64.size(); ++i) g64[i] += tb.grads[i];
    test::expect_grads_within(m, g_packed.data(), m.grads(), g64.data(), "packed against separate runs");
  }
}

// Padded vocabulary rows of the output matrix never reach the loss.
TEST(Model, PaddedVocabularyIgnored) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    fill_random(m, 3);
    const Data d = random_token_data(c, 2, 8, 1);
    float* w = m.param(c.tie_embeddings ? "tok_emb.weight" : "lm_head.weight");
    std::fill(w + static_cast<size_t>(c.vocab_size) * c.d_model, w + static_cast<size_t>(c.padded_vocab_size) * c.d_model,
              0.0f);
    const double l0 = m.forward(d.batch(2, 8)).sum;
    std::fill(w + static_cast<size_t>(c.vocab_size) * c.d_model, w + static_cast<size_t>(c.padded_vocab_size) * c.d_model,
              5.0f);
    EXPECT_EQ(m.forward(d.batch(2, 8)).sum, l0);
  }
}

TEST(Model, ArenaSizedOncePerRowsAndReported) {
  const ModelConfig c = tiny("llama-tiny");
  Model m(c);
  m.init_weights(1);
  EXPECT_EQ(m.activation_bytes(), 0u);
  const Data d = random_token_data(c, 4, 16, 2);
  m.forward_backward(d.batch(4, 16), 1.0f);
  const size_t bytes = m.activation_bytes();
  EXPECT_EQ(bytes, Model::activation_bytes_for(c, 4, 16));
  m.forward_backward(d.batch(2, 16), 1.0f);  // fewer rows: same arena
  m.forward(d.batch(1, 16));
  EXPECT_EQ(m.activation_bytes(), bytes);
  m.reserve_activations(8, 16);  // more rows: grows
  EXPECT_EQ(m.activation_bytes(), Model::activation_bytes_for(c, 8, 16));
  EXPECT_GT(Model::activation_bytes_for(c, 8, 16), bytes);
}

TEST(Model, ProfilerSeesEveryKernel) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m(c);
    m.init_weights(1);
    const int B = 2, T = 8, N = B * T, L = c.n_layer, C = c.d_model, F = c.d_ff;
    const Data d = random_token_data(c, B, T, 2);
    Profiler prof;
    m.set_profiler(&prof);
    m.forward_backward(d.batch(B, T), 1.0f);
    m.set_profiler(nullptr);
    m.forward_backward(d.batch(B, T), 1.0f);  // not recorded
    const auto& e = prof.entries();
    const bool gpt2 = c.family == Family::gpt2;
    for (const char* name : {"encoder_forward", "encoder_backward", "linear_forward", "linear_backward",
                             "attention_forward", "attention_backward", "classifier_forward", "classifier_backward",
                             "crossentropy", "residual_forward", "zero_activation_grads"})
      EXPECT_EQ(e.count(name), 1u) << name;
    EXPECT_EQ(e.count(gpt2 ? "layernorm_forward" : "rmsnorm_forward"), 1u);
    EXPECT_EQ(e.count(gpt2 ? "gelu_backward" : "swiglu_backward"), 1u);
    EXPECT_EQ(e.count("rope_backward"), gpt2 ? 0u : 1u);
    ASSERT_EQ(e.count("linear_forward"), 1u);
    EXPECT_EQ(e.at("linear_forward").calls, 4 * L);
    EXPECT_EQ(e.at("attention_forward").calls, L);
    const double up = gpt2 ? F : 2.0 * F;
    const double want = 2.0 * N * L * (C * double(c.qkv_dim()) + C * double(C) + C * up + F * double(C));
    EXPECT_DOUBLE_EQ(e.at("linear_forward").flops, want);
    EXPECT_DOUBLE_EQ(e.at("linear_backward").flops, 2 * want);
    EXPECT_DOUBLE_EQ(e.at("classifier_forward").flops, 2.0 * N * C * c.padded_vocab_size);
  }
}

TEST(Model, RejectsBadBatches) {
  const ModelConfig c = tiny("gpt2-tiny");
  Model m(c);
  Data d = random_token_data(c, 1, 8, 4);
  Batch b = d.batch(1, 8);
  d.tokens[3] = c.vocab_size;  // a padded id is not a token
  EXPECT_THROW(m.forward(b), Error);
  d.tokens[3] = -1;
  EXPECT_THROW(m.forward(b), Error);
  d.tokens[3] = 0;
  d.targets[2] = 600;
  EXPECT_THROW(m.forward(b), Error);
  d.targets[2] = kIgnoreIndex;
  EXPECT_NO_THROW(m.forward(b));
  Batch nt = b;
  nt.targets = nullptr;
  EXPECT_THROW(m.forward_backward(nt, 1.0f), Error);
  std::vector<int32_t> big(static_cast<size_t>(c.max_seq_len) + 1, 0);
  Batch too_long;
  too_long.tokens = big.data();
  too_long.B = 1;
  too_long.T = c.max_seq_len + 1;
  EXPECT_THROW(m.forward(too_long), Error);
  std::vector<int32_t> pos(8, c.max_seq_len);
  b.pos = pos.data();
  EXPECT_THROW(m.forward(b), Error);
  Batch empty;
  EXPECT_THROW(m.forward(empty), Error);
}


// Recomputation rebuilds dropped activations with the forward's own kernels, so the
// loss and every gradient are bit-identical to keeping them; the arena shrinks.
TEST(Model, RecomputeGradientsAreBitIdentical) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    const int B = 2, T = 16;
    Data d = random_token_data(c, B, T, 5, 7);
    std::vector<int32_t> pos(static_cast<size_t>(B) * T), seg(pos.size());
    for (int i = 0; i < B * T; ++i) {  // row 1 packs two documents
      const int t = i % T;
      pos[i] = i < T || t < 9 ? t : t - 9;
      seg[i] = i < T || t < 9 ? 0 : 1;
    }
    Batch b = d.batch(B, T);
    b.pos = pos.data();
    b.seg = seg.data();
    Model m(c);
    fill_random(m, 11);
    m.zero_grad();
    const LossSum l0 = m.forward_backward(b, 0.05f);
    const std::vector<float> g0 = grads_of(m);
    size_t prev_bytes = m.activation_bytes();
    EXPECT_EQ(prev_bytes, Model::activation_bytes_for(c, B, T, Recompute::none));
    for (Recompute r : {Recompute::attention, Recompute::block}) {
      SCOPED_TRACE(std::string(recompute_name(r)));
      m.set_recompute(r);
      m.zero_grad();
      const LossSum l = m.forward_backward(b, 0.05f);
      EXPECT_EQ(l.sum, l0.sum);
      EXPECT_EQ(l.count, l0.count);
      EXPECT_EQ(std::memcmp(g0.data(), m.grads(), g0.size() * sizeof(float)), 0);
      EXPECT_EQ(m.activation_bytes(), Model::activation_bytes_for(c, B, T, r));
      EXPECT_LT(m.activation_bytes(), prev_bytes);
      prev_bytes = m.activation_bytes();
      // A second step on the same arena: nothing stale from the first.
      m.zero_grad();
      m.forward_backward(b, 0.05f);
      EXPECT_EQ(std::memcmp(g0.data(), m.grads(), g0.size() * sizeof(float)), 0);
    }
    m.set_recompute(Recompute::none);  // back: the arena is re-carved
    m.zero_grad();
    m.forward_backward(b, 0.05f);
    EXPECT_EQ(std::memcmp(g0.data(), m.grads(), g0.size() * sizeof(float)), 0);
    EXPECT_EQ(m.activation_bytes(), Model::activation_bytes_for(c, B, T, Recompute::none));
  }
  EXPECT_EQ(recompute_from_name("full"), Recompute::block);
  EXPECT_THROW(recompute_from_name("sometimes"), ConfigError);
}

}  // namespace
}  // namespace teddy

// Rows near 2^31 (the planner's micro-batch search reaches them) split without int
// overflow: 256 chunks of 8388600 rows, not a wrapped negative count.
TEST(ModelChunks, EvenChunkRowsNearIntMax) {
  EXPECT_EQ(teddy::model_detail::even_chunk_rows(2147481600, 8388600), 8388600);
  EXPECT_EQ(teddy::model_detail::even_chunk_rows(2147483647, 1024), 1024);
  EXPECT_EQ(teddy::model_detail::even_chunk_rows(1000, 512), 512);  // 2 chunks of 500, rounded up to 16
  EXPECT_EQ(teddy::model_detail::even_chunk_rows(100, 512), 112);
}
