// Mixed precision (bf16 / fp16): the conversion passes, which weights the matrix
// products see rounded, closeness to fp32, recomputation staying bit-exact in 16-bit
// modes, fp16 gradient underflow without a loss scale, and the arena's exact size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "model/tiny_models.h"
#include "model/model_f64.h"

namespace teddy {
namespace {

using test::rel_error;

ModelConfig tiny(const char* preset) { return test::tiny_preset(preset); }
ModelConfig gpt2_untied() {
  ModelConfig c = tiny("gpt2-tiny");
  c.tie_embeddings = false;
  return c;
}
ModelConfig llama_gqa_tied_bias() {
  ModelConfig c = tiny("llama-tiny");
  c.n_head = 4;
  c.n_kv_head = 2;
  c.tie_embeddings = true;
  c.bias = true;
  return c;
}
std::vector<ModelConfig> all_configs() {
  return {tiny("gpt2-tiny"), gpt2_untied(), tiny("llama-tiny"), llama_gqa_tied_bias()};
}
std::string label(const ModelConfig& c) { return test::config_label(c); }

void fill_random(Model& m, uint64_t seed) { test::fill_random_params(m, seed); }

using Data = test::TokenData;
Data random_token_data(const ModelConfig& c, int B, int T, uint64_t seed) { return test::random_token_data(c, B, T, seed, 9); }

struct Result {
  LossSum loss;
  std::vector<float> grads;
};
Result run(Model& m, const Batch& b, float dloss) {
  m.zero_grad();
  Result r;
  r.loss = m.forward_backward(b, dloss);
  r.grads.assign(m.grads(), m.grads() + m.flat_size());
  return r;
}

bool is_matmul_weight(const ParamInfo& p) {
  return p.shape.size() == 2 && p.name.find("pos_emb") == std::string::npos &&
         p.name.find("tok_emb") == std::string::npos;
}

TEST(Precision, NamesParseAndBadNameNamesTheField) {
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::fp16})
    EXPECT_EQ(precision_from_name(precision_name(p)), p);
  EXPECT_EQ(precision_dtype(Precision::bf16), DType::bf16);
  EXPECT_EQ(precision_dtype(Precision::fp16), DType::f16);
  try {
    precision_from_name("fp8", "train.precision");
    FAIL() << "fp8 accepted";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.precision"), std::string::npos) << m;
    EXPECT_NE(m.find("fp8"), std::string::npos) << m;
    EXPECT_NE(m.find("bf16"), std::string::npos) << m;  // says what is accepted
  }
}

// The passes the model uses agree with the scalar round-to-nearest-even conversions
// on every 16-bit pattern and on random floats (F16C and scalar paths alike; lengths
// that are not multiples of the vector width).
TEST(Precision, ConversionPassesAreExact) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> w(all.size());
  for (DType t : {DType::bf16, DType::f16}) {
    widen_to_f32(t, w.data(), all.data(), all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      const float want = t == DType::bf16 ? bf16_to_f32(all[i]) : f16_to_f32(all[i]);
      ASSERT_TRUE(std::memcmp(&w[i], &want, 4) == 0 || (std::isnan(w[i]) && std::isnan(want))) << i;
    }
  }
  std::mt19937 rng(3);
  std::vector<float> x(200003);
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    x[i] = i % 3 == 0 ? f : std::ldexp(static_cast<float>(rng()) / 4294967296.0f - 0.5f, static_cast<int>(rng() % 60) - 30);
  }
  x[5] = 65519.0f;   // rounds down to the largest half
  x[6] = 65520.0f;   // rounds up to inf in fp16
  x[7] = 1e-8f;      // half subnormal range
  x[8] = -0.0f;
  for (DType t : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    std::vector<float> r = x, c(x.size());
    std::vector<uint16_t> bits(x.size());
    round_through(t, r.data(), bits.data(), r.size());
    round_copy(t, c.data(), x.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const uint16_t want = t == DType::bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
      const float back = t == DType::bf16 ? bf16_to_f32(want) : f16_to_f32(want);
      ASSERT_EQ(bits[i], want) << i << " x=" << x[i];
      ASSERT_TRUE(std::memcmp(&r[i], &back, 4) == 0 || (std::isnan(r[i]) && std::isnan(back))) << i;
      ASSERT_TRUE(std::memcmp(&c[i], &back, 4) == 0 || (std::isnan(c[i]) && std::isnan(back))) << i;
    }
  }
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(65520.0f))));
  std::vector<float> y = x;
  round_through(DType::f32, y.data(), nullptr, y.size());  // fp32: untouched
  EXPECT_EQ(std::memcmp(y.data(), x.data(), x.size() * 4), 0);
}

// bf16/fp16 forward and backward stay close to fp32, fp16 is closer than bf16, and the
// fp32 master weights are never modified by a forward or backward.
//   The bound: a 16-bit mode rounds, each element to within u = eps/2 relative (eps =
// kEpsBF16 = 2^-7 or kEpsF16 = 2^-10), on the way to the logits: the residual stream
// after the embeddings; per block the four matmul weights (qkv, proj, up, down), the
// tensors it saves (ln1, qkv, att, h, ln2, up), the MLP activation (the down GEMM's
// input) and its output (the residual stream): 12; then the classifier's input and
// weight. n_fwd = 12 L + 3 places. Backward rounds the residual-stream gradient after
// the final norm and after every block: n_bwd = L + 1 more. To first order each
// rounding moves a result by its relative perturbation times a gain, and in these
// pre-norm blocks every place is followed by a normalisation or enters the residual
// stream as a branch no larger than the stream (gain <= 1), so in the worst case (all
// aligned) the logits move by <= n_fwd u and the gradients by <= (n_fwd + n_bwd) u,
// relative (2-norms). The loss is then bounded through its logits
// (test::loss_sum_bound: 2 max |z16 - z32| per target, plus the cross-entropy kernel's
// rounding in each run). fp32's own rounding (~1e-7) is far below and ignored.
TEST(Precision, CloseToFp32AndFp16CloserThanBf16) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    const int B = 2, T = 24, N = B * T, V = c.vocab_size, Vp = c.padded_vocab_size;
    const Data d = random_token_data(c, B, T, 21);
    const Batch b = d.batch(B, T);
    Model m(c);
    fill_random(m, 5);
    const std::vector<float> params(m.params(), m.params() + m.flat_size());
    const Result ref = run(m, b, 0.02f);
    std::vector<float> z32(static_cast<size_t>(N) * Vp);
    m.forward(b, z32.data());
    const std::vector<double> z32d(z32.begin(), z32.end());
    const double n_fwd = 12.0 * c.n_layer + 3, n_bwd = c.n_layer + 1.0;
    double err[2] = {0, 0};
    int i = 0;
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      const std::string name(precision_name(p));
      const double u = (p == Precision::bf16 ? test::kEpsBF16 : test::kEpsF16) / 2;
      m.set_precision(p);
      const Result r = run(m, b, 0.02f);
      std::vector<float> z16(z32.size());
      m.forward(b, z16.data());
      EXPECT_EQ(r.loss.count, ref.loss.count);
      const double zerr = rel_error(z16.data(), z32.data(), z32.size());
      err[i] = rel_error(r.grads.data(), ref.grads.data(), ref.grads.size());
      test::expect_within(zerr, n_fwd * u, name + " logits");
      test::expect_within(err[i], (n_fwd + n_bwd) * u, name + " gradients");
      const double lb =
          test::loss_sum_bound(z16.data(), z32d.data(), d.targets.data(), N, V, Vp, 2, ref.loss.sum) +
          test::loss_sum_bound(z32.data(), z32d.data(), d.targets.data(), N, V, Vp, 2, ref.loss.sum);
      test::expect_within(std::abs(r.loss.sum - ref.loss.sum), lb, name + " loss");
      EXPECT_EQ(std::memcmp(params.data(), m.params(), params.size() * 4), 0) << "master weights changed";
      std::printf("  %s %s: rel. error logits %.2e (%.2g u) grads %.2e (%.2g u), loss %.2e\n", label(c).c_str(),
                  name.c_str(), zerr, zerr / u, err[i], err[i] / u, std::abs(r.loss.sum - ref.loss.sum) / ref.loss.sum);
      ++i;
    }
    EXPECT_GT(err[0], 0) << "bf16 should not be exactly fp32";
    // To first order the error is linear in u, and u_fp16 = u_bf16 / 8: over thousands
    // of gradient entries the two norms follow that ratio closely; 1/2 leaves 4x for
    // the two modes' different rounding draws.
    EXPECT_LT(err[1], err[0] / 2);
  }
}

// Exactly the matrix-product weights are rounded: a model whose qkv/proj/up/down/head
// weights are already 16-bit values gives bit-identical results, while rounding any
// other tensor (norm weights, biases, embeddings) would change them.
TEST(Precision, MatmulWeightsAndOnlyThoseAreRounded) {
  for (ModelConfig c : {gpt2_untied(), tiny("llama-tiny")}) {
    SCOPED_TRACE(label(c));
    c.bias = true;
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      SCOPED_TRACE(std::string(precision_name(p)));
      const int B = 2, T = 16;
      const Data d = random_token_data(c, B, T, 8);
      Model a(c), r(c);
      fill_random(a, 17);
      std::memcpy(r.params(), a.params(), a.flat_size() * 4);
      for (const ParamInfo& pi : r.layout().params)
        if (is_matmul_weight(pi)) round_through(precision_dtype(p), r.params() + pi.offset, nullptr, pi.numel);
      a.set_precision(p);
      r.set_precision(p);
      const Result ra = run(a, d.batch(B, T), 0.03f), rr = run(r, d.batch(B, T), 0.03f);
      EXPECT_EQ(ra.loss.sum, rr.loss.sum);
      EXPECT_EQ(std::memcmp(ra.grads.data(), rr.grads.data(), ra.grads.size() * 4), 0);
      // And a non-matmul tensor is not rounded: rounding the norm weights changes the loss.
      for (const ParamInfo& pi : r.layout().params)
        if (pi.name.find("norm") != std::string::npos)
          round_through(precision_dtype(p), r.params() + pi.offset, nullptr, pi.numel);
      EXPECT_NE(run(r, d.batch(B, T), 0.03f).loss.sum, ra.loss.sum);
    }
  }
}

// Recomputation in 16-bit modes rebuilds the same rounded tensors: bit-identical to
// keeping them, and the arena follows both the mode and the precision.
TEST(Precision, RecomputeIsBitIdenticalIn16Bit) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      SCOPED_TRACE(std::string(precision_name(p)));
      const int B = 2, T = 16;
      const Data d = random_token_data(c, B, T, 3);
      Model m(c);
      fill_random(m, 2);
      m.set_precision(p);
      const Result none = run(m, d.batch(B, T), 0.05f);
      EXPECT_EQ(m.activation_bytes(), Model::activation_bytes_for(c, B, T, Recompute::none, p));
      for (Recompute rc : {Recompute::attention, Recompute::block}) {
        m.set_recompute(rc);
        const Result r = run(m, d.batch(B, T), 0.05f);
        EXPECT_EQ(r.loss.sum, none.loss.sum);
        EXPECT_EQ(std::memcmp(r.grads.data(), none.grads.data(), none.grads.size() * 4), 0) << recompute_name(rc);
        EXPECT_EQ(m.activation_bytes(), Model::activation_bytes_for(c, B, T, rc, p));
      }
      // Back to fp32 and none: the arena is re-carved and the fp32 result comes back.
      m.set_recompute(Recompute::none);
      m.set_precision(Precision::fp32);
      Model f(c);
      fill_random(f, 2);
      const Result r32 = run(m, d.batch(B, T), 0.05f), f32 = run(f, d.batch(B, T), 0.05f);
      EXPECT_EQ(std::memcmp(r32.grads.data(), f32.grads.data(), f32.grads.size() * 4), 0);
      EXPECT_EQ(m.weight_scratch_bytes(), 0u);
    }
  }
}

// fp16's narrow range is what loss scaling is for: with a tiny loss gradient the
// residual-stream gradient flushes to zero at the block boundaries (the blocks get no
// gradient at all), while scaling it by 2^32 keeps it, and a huge scale overflows to inf.
TEST(Precision, Fp16GradientsUnderflowWithoutScaleAndOverflowWithAHugeOne) {
  const ModelConfig c = tiny("gpt2-tiny");
  const int B = 2, T = 16;
  const Data d = random_token_data(c, B, T, 4);
  Model m(c);
  fill_random(m, 9);
  m.set_precision(Precision::fp16);
  const ParamInfo& w = m.layout().find("layers.0.mlp.up.weight");
  auto block0_nonzero = [&](float dloss) {
    run(m, d.batch(B, T), dloss);
    size_t nz = 0;
    for (size_t i = 0; i < w.numel; ++i) nz += m.grads()[w.offset + i] != 0.0f;
    return nz;
  };
  const float tiny_dloss = 1e-9f;  // a loss gradient far below fp16's smallest subnormal scale
  EXPECT_EQ(block0_nonzero(tiny_dloss), 0u);
  EXPECT_GT(block0_nonzero(tiny_dloss * 65536.0f * 65536.0f), w.numel / 2);
  m.set_precision(Precision::fp32);  // fp32 keeps the tiny gradient
  EXPECT_GT(block0_nonzero(tiny_dloss), w.numel / 2);
  m.set_precision(Precision::fp16);
  run(m, d.batch(B, T), 1e12f);
  bool finite = true;
  for (size_t i = 0; i < m.flat_size(); ++i) finite = finite && std::isfinite(m.grads()[i]);
  EXPECT_FALSE(finite) << "a 1e12 loss gradient must overflow fp16";
}

// The arena in a 16-bit mode, by arithmetic: each kept tensor of a block (ln1, qkv,
// att, h, ln2, up) and the residual stream take 2 bytes an element instead of 4; one
// block's worth of those tensors is added as fp32 working scratch (shared by all
// layers, like recomputation's), plus a second fp32 residual buffer; everything else
// (norm statistics, logsumexp, logits, losses, gradients) is unchanged.
TEST(Precision, ArenaIsHalfForSavedTensorsExactly) {
  for (const ModelConfig& c : {tiny("gpt2-tiny"), tiny("llama-tiny"), ModelConfig::preset("gpt2-124M")}) {
    SCOPED_TRACE(label(c));
    const int B = 3, T = 20;
    const size_t N = static_cast<size_t>(B) * T, C = c.d_model, L = c.n_layer;
    const size_t up = c.family == Family::gpt2 ? c.d_ff : 2 * c.d_ff;
    auto A = [](size_t bytes) { return align_up(bytes, kAlignBytes); };
    const size_t attn[3] = {N * C, N * c.qkv_dim(), N * C}, mlp[3] = {N * C, N * C, N * up};
    auto diff = [&](const size_t* t) {  // bytes one layer saves by storing these in 16 bits
      size_t s = 0;
      for (int i = 0; i < 3; ++i) s += A(4 * t[i]) - A(2 * t[i]);
      return s;
    };
    auto f32 = [&](const size_t* t) {
      size_t s = 0;
      for (int i = 0; i < 3; ++i) s += A(4 * t[i]);
      return s;
    };
    const size_t resid_change = (L + 1) * (A(4 * N * C) - A(2 * N * C)) - 2 * A(4 * N * C);
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      const size_t none32 = Model::activation_bytes_for(c, B, T, Recompute::none);
      const size_t attn32 = Model::activation_bytes_for(c, B, T, Recompute::attention);
      const size_t block32 = Model::activation_bytes_for(c, B, T, Recompute::block);
      EXPECT_EQ(Model::activation_bytes_for(c, B, T, Recompute::none, p),
                none32 - L * (diff(attn) + diff(mlp)) + f32(attn) + f32(mlp) - resid_change);
      EXPECT_EQ(Model::activation_bytes_for(c, B, T, Recompute::attention, p),
                attn32 - L * diff(mlp) + f32(mlp) - resid_change);
      EXPECT_EQ(Model::activation_bytes_for(c, B, T, Recompute::block, p), block32 - resid_change);
    }
    EXPECT_EQ(Model::weight_scratch_bytes_for(c, Precision::fp32), 0u);
    const size_t head = static_cast<size_t>(c.padded_vocab_size) * C * 4;
    EXPECT_GE(Model::weight_scratch_bytes_for(c, Precision::bf16), head);
  }
}

// What the layers keep for backward halves in 16 bits, but for the fp32 norm statistics
// and logsumexp (and alignment); the working buffers do not, so the whole arena shrinks less.
TEST(Precision, SavedActivationsHalve) {
  for (const ModelConfig& c : {tiny("gpt2-tiny"), ModelConfig::preset("gpt2-124M"), ModelConfig::preset("llama-134M")}) {
    SCOPED_TRACE(label(c));
    const int B = 4, T = 256;
    for (Recompute r : {Recompute::none, Recompute::attention, Recompute::block}) {
      const double s32 = static_cast<double>(Model::saved_activation_bytes_for(c, B, T, r));
      const double s16 = static_cast<double>(Model::saved_activation_bytes_for(c, B, T, r, Precision::bf16));
      const double stats = static_cast<double>(c.n_layer) * B * T * 4 * (c.n_head + 4);  // upper bound, fp32
      EXPECT_GT(s32, 0);
      EXPECT_LE(s16, s32 / 2 + stats);
      EXPECT_GE(s16, s32 / 2);
      EXPECT_LT(s16, Model::activation_bytes_for(c, B, T, r, Precision::bf16));
    }
  }
  Model m(tiny("gpt2-tiny"));
  m.set_precision(Precision::bf16);
  m.reserve_activations(2, 16);
  EXPECT_EQ(m.saved_activation_bytes(), Model::saved_activation_bytes_for(m.config(), 2, 16, Recompute::none, Precision::bf16));
}

}  // namespace
}  // namespace teddy
