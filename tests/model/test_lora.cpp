// LoRA in the model: the adapters are the only trainable parameters (the flat buffers
// hold them alone, the base never changes, no base gradient exists), B = 0 starts
// exactly at the base model, the targets select the right parts, a merged model's
// logits equal the adapted model's, set-mode gradients equal zero + add, recompute
// stays bit-exact, dropout masks follow the counter, bad configs name their key.
// The gradients' values are checked against PyTorch in test_lora_vs_pytorch.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/model_f64.h"
#include "model/tiny_models.h"
#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/quant_weight.h"
#include "teddy/model/kv_decoder.h"
#include "teddy/model/lora.h"
#include "teddy/model/model.h"

using namespace teddy;
using namespace teddy::test;

namespace {

LoraConfig lora_cfg(int r = 4, std::vector<std::string> targets = {}, float dropout = 0) {
  LoraConfig l;
  l.r = r;
  l.alpha = 8;
  l.targets = std::move(targets);
  l.dropout = dropout;
  return l;
}

// A base model with random weights and a LoRA copy of it (same base), B random so
// every adapter gradient is non-zero.
struct Pair {
  Model base, lora;
};
Pair make_pair(Family f, const LoraConfig& l, bool random_b = true) {
  const ModelConfig c = tiny_family(f);
  Pair p{Model(c), Model(c)};
  fill_random_params(p.base, 11);
  fill_random_params(p.lora, 11);
  p.lora.enable_lora(l, 5);
  if (random_b) fill_random_params(p.lora, 21);
  return p;
}

std::vector<float> logits_of(Model& m, const Batch& b) {
  const ModelConfig& c = m.config();
  std::vector<float> out(static_cast<size_t>(b.B) * b.T * c.padded_vocab_size);
  m.forward(b, out.data());
  return out;
}

TEST(Lora, FlatBuffersHoldOnlyTheAdapters) {
  for (Family f : {Family::gpt2, Family::llama}) {
    const ModelConfig c = tiny_family(f);
    Model m(c);
    const size_t base_total = m.flat_size();
    m.enable_lora(lora_cfg(4), 1);
    EXPECT_EQ(m.base_layout().total, base_total);
    for (const ParamInfo& p : m.layout().params) EXPECT_NE(p.name.find(".lora_"), std::string::npos) << p.name;
    // Per block: qkv A (P*r, C) + B (QKV, r), proj, up, down; P = 3 / 2 for LLaMA's fused ones.
    const size_t C = c.d_model, F = c.d_ff, r = 4, QKV = c.qkv_dim();
    const size_t per_block = f == Family::gpt2
                                 ? (r * C + QKV * r) + (r * C + C * r) + (r * C + F * r) + (r * F + C * r)
                                 : (3 * r * C + QKV * r) + (r * C + C * r) + (2 * r * C + 2 * F * r) + (r * F + C * r);
    EXPECT_EQ(m.layout().count(), per_block * c.n_layer);
    EXPECT_EQ(m.grad_bytes(), m.flat_size() * sizeof(float));
    EXPECT_EQ(m.param_bytes(), m.flat_size() * sizeof(float));
    EXPECT_EQ(m.base_bytes(), base_total * sizeof(float));
  }
}

TEST(Lora, ZeroBStartsExactlyAtTheBase) {
  for (Family f : {Family::gpt2, Family::llama}) {
    SCOPED_TRACE(family_name(f));
    Pair p = make_pair(f, lora_cfg(4), /*random_b=*/false);
    const TokenData d = random_token_data(p.base.config(), 2, 7, 3);
    const Batch b = d.batch(2, 7);
    // x W0^T + scale * u 0^T adds exact zeros: bit-identical logits and loss.
    EXPECT_EQ(logits_of(p.lora, b), logits_of(p.base, b));
    const LossSum lb = p.base.forward_backward(b, 1.0f);
    const LossSum ll = p.lora.forward_backward(b, 1.0f);
    EXPECT_EQ(ll.sum, lb.sum);
    // B's gradient is not zero (A is), A's is (B = 0).
    double gA = 0, gB = 0;
    for (const ParamInfo& q : p.lora.layout().params)
      for (size_t i = 0; i < q.numel; ++i)
        (q.name.back() == 'A' ? gA : gB) += std::fabs(p.lora.grads()[q.offset + i]);
    EXPECT_EQ(gA, 0.0);
    EXPECT_GT(gB, 0.0);
  }
}

TEST(Lora, BaseIsFrozen) {
  Pair p = make_pair(Family::llama, lora_cfg(2));
  const std::vector<float> before(p.lora.base_params(), p.lora.base_params() + p.lora.base_layout().total);
  const TokenData d = random_token_data(p.lora.config(), 2, 9, 4);
  p.lora.forward_backward(d.batch(2, 9), 0.1f);
  p.lora.forward(d.batch(2, 9));
  EXPECT_EQ(std::memcmp(before.data(), p.lora.base_params(), before.size() * sizeof(float)), 0);
}

TEST(Lora, MergedLogitsEqualTheAdaptedModels) {
  for (Family f : {Family::gpt2, Family::llama})
    for (bool rs : {false, true}) {
      SCOPED_TRACE(std::string(family_name(f)) + (rs ? " rslora" : ""));
      LoraConfig l = lora_cfg(3);
      l.rslora = rs;
      Pair p = make_pair(f, l);
      Model merged = merge_lora(p.lora);
      EXPECT_EQ(merged.lora(), nullptr);
      const TokenData d = random_token_data(p.lora.config(), 2, 11, 5);
      const Batch b = d.batch(2, 11);
      const std::vector<float> a = logits_of(p.lora, b), m = logits_of(merged, b);
      // Both are fp32 evaluations of the same function; the float64 twin of the merged
      // weights measures how far a plain fp32 pass is, and the rule asks each to stay
      // within 2x that + eps (model_f64.h).
      const F64Pass t64 = twin_pass<double>(merged, merged.params(), b, true, false, 1.0);
      const F64Pass t32 = twin_pass<float>(merged, merged.params(), b, true, false, 1.0);
      expect_rule(dist(a.data(), t32.logits.data(), t64.logits.data(), a.size()), "adapted logits");
      expect_rule(dist(m.data(), t32.logits.data(), t64.logits.data(), m.size()), "merged logits");
      // The figure: within 1e-5 relative.
      EXPECT_LE(rel_error(a.data(), m.data(), a.size()), 1e-5);
    }
}

TEST(Lora, TargetsSelectParts) {
  const ModelConfig c = tiny_family(Family::llama);
  auto sites = lora_sites(c, lora_cfg(2, {"q_proj", "v_proj"}));
  ASSERT_EQ(sites.size(), 1u);
  EXPECT_EQ(sites[0].name, "attn.qkv");
  ASSERT_EQ(sites[0].parts.size(), 2u);
  EXPECT_EQ(sites[0].parts[0].hf_module, "self_attn.q_proj");
  EXPECT_EQ(sites[0].parts[1].off, c.n_head * c.head_dim() + c.n_kv_head * c.head_dim());
  EXPECT_EQ(lora_sites(c, lora_cfg(2, {"mlp.up"}))[0].parts.size(), 2u);  // gate and up
  const ModelConfig g = tiny_family(Family::gpt2);
  EXPECT_EQ(lora_sites(g, lora_cfg(2, {"c_proj"})).size(), 2u);  // attn.c_proj and mlp.c_proj, as PEFT
  EXPECT_EQ(lora_sites(g, lora_cfg(2, {"mlp.c_proj"})).size(), 1u);
  EXPECT_EQ(lora_sites(g, lora_cfg(2)).size(), 4u);
  // A subset model runs and folds like the full one.
  Pair p = make_pair(Family::llama, lora_cfg(2, {"q_proj", "v_proj", "down_proj"}));
  Model merged = merge_lora(p.lora);
  const TokenData d = random_token_data(c, 1, 6, 6);
  const std::vector<float> a = logits_of(p.lora, d.batch(1, 6)), m = logits_of(merged, d.batch(1, 6));
  EXPECT_LE(rel_error(a.data(), m.data(), a.size()), 1e-5);
  // k_proj's rows are untouched by the fold.
  const int q = c.n_head * c.head_dim(), kv = c.n_kv_head * c.head_dim();
  const float* w0 = p.lora.base_param("layers.0.attn.qkv.weight");
  const float* w1 = merged.param("layers.0.attn.qkv.weight");
  EXPECT_EQ(std::memcmp(w0 + static_cast<size_t>(q) * c.d_model, w1 + static_cast<size_t>(q) * c.d_model,
                        static_cast<size_t>(kv) * c.d_model * sizeof(float)),
            0);
}

TEST(Lora, BadConfigsNameTheirKey) {
  const ModelConfig c = tiny_family(Family::llama);
  auto msg = [&](const LoraConfig& l) {
    try {
      l.validate(c);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(lora_cfg(0)).find("lora.r"), std::string::npos);
  EXPECT_NE(msg(lora_cfg(-3)).find("lora.r"), std::string::npos);
  EXPECT_NE(msg(lora_cfg(2, {"c_attn"})).find("lora.targets: unknown target 'c_attn'"), std::string::npos);
  EXPECT_NE(msg(lora_cfg(2, {}, 1.0f)).find("lora.dropout"), std::string::npos);
  LoraConfig q = lora_cfg(2);
  q.quantize = "int3";
  EXPECT_NE(msg(q).find("lora.quantize"), std::string::npos);
  LoraConfig a = lora_cfg(2);
  a.alpha = -1;
  EXPECT_NE(msg(a).find("lora.alpha"), std::string::npos);
  EXPECT_EQ(msg(lora_cfg(2)), "no error");
  Model m(c);
  m.enable_lora(lora_cfg(2), 1);
  EXPECT_THROW(m.enable_lora(lora_cfg(2), 1), Error);
}

// Grad::set on a NaN-filled gradient buffer equals zero_grad + add, bit for bit; the
// recompute modes give the same gradients bit for bit.
TEST(Lora, SetModeAndRecomputeAreExact) {
  for (Family f : {Family::gpt2, Family::llama})
    for (float drop : {0.0f, 0.25f}) {
      SCOPED_TRACE(std::string(family_name(f)) + " dropout " + std::to_string(drop));
      Pair p = make_pair(f, lora_cfg(3, {}, drop));
      const TokenData d = random_token_data(p.lora.config(), 2, 9, 7, 3);
      const Batch b = d.batch(2, 9);
      p.lora.zero_grad();
      p.lora.set_lora_dropout_counter(4);
      const LossSum l0 = p.lora.forward_backward(b, 0.5f);
      const std::vector<float> g0(p.lora.grads(), p.lora.grads() + p.lora.flat_size());
      std::fill(p.lora.grads(), p.lora.grads() + p.lora.flat_size(), NAN);
      p.lora.set_lora_dropout_counter(4);
      const LossSum l1 = p.lora.forward_backward(b, 0.5f, kernels::Grad::set);
      EXPECT_EQ(l1.sum, l0.sum);
      EXPECT_EQ(std::vector<float>(p.lora.grads(), p.lora.grads() + p.lora.flat_size()), g0);
      for (Recompute r : {Recompute::attention, Recompute::block}) {
        p.lora.set_recompute(r);
        p.lora.set_lora_dropout_counter(4);
        p.lora.forward_backward(b, 0.5f, kernels::Grad::set);
        EXPECT_EQ(std::vector<float>(p.lora.grads(), p.lora.grads() + p.lora.flat_size()), g0) << recompute_name(r);
      }
      p.lora.set_recompute(Recompute::none);
      // Another counter: other masks (with dropout), so another loss; without, the same.
      p.lora.set_lora_dropout_counter(5);
      const LossSum l2 = p.lora.forward_backward(b, 0.5f, kernels::Grad::set);
      if (drop > 0)
        EXPECT_NE(l2.sum, l0.sum);
      else
        EXPECT_EQ(l2.sum, l0.sum);
      EXPECT_EQ(p.lora.lora_dropout_counter(), 6u);  // counts forward_backward calls
    }
}

}  // namespace

namespace {

// QLoRA: a base whose blocks' linears are stored in NF4 (or bf16), embedding and head in
// bf16, computes what a LoRA model over the dequantized fp32 weights computes: logits by
// the vector rule against a float64 twin of the merged model, gradients within 1e-4 relative per tensor (two fp32
// evaluations with different GEMM tilings); the base takes ~4.127 bits per linear weight.
TEST(Lora, QuantizedBaseEqualsTheDequantizedOne) {
  for (const char* quant : {"nf4", "bf16"})
    for (Family f : {Family::gpt2, Family::llama}) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      const ModelConfig c = tiny_family(f);
      LoraConfig l = lora_cfg(4);
      l.quantize = quant;
      Model q(c);
      fill_random_params(q, 31);
      const size_t fp32_bytes = q.param_bytes();
      q.enable_lora(l, 2);
      fill_random_params(q, 41);  // B != 0
      // The same model with the dequantized weights in fp32.
      Model r(c);
      for (const ParamInfo& p : r.layout().params) q.base_weight(p.name, r.params() + p.offset);
      l.quantize = "none";
      r.enable_lora(l, 2);
      std::copy(q.params(), q.params() + q.flat_size(), r.params());
      const TokenData d = random_token_data(c, 2, 9, 8, 4);
      const Batch b = d.batch(2, 9);
      const std::vector<float> zq = logits_of(q, b);
      Model merged = merge_lora(r);
      const F64Pass t64 = twin_pass<double>(merged, merged.params(), b, true, false, 1.0);
      // The plain side is the same unmerged LoRA computation over fp32 storage (r): the
      // merged twin's float pass is not, and with a bf16 embedding its error shrinks
      // (bf16 rows plus fp32 positions add exactly) while the unmerged adapters' does not.
      const std::vector<float> zr = logits_of(r, b);
      expect_rule(dist(zq.data(), zr.data(), t64.logits.data(), zq.size()), std::string(quant) + " logits");
      q.forward_backward(b, 0.1f, kernels::Grad::set);
      r.forward_backward(b, 0.1f, kernels::Grad::set);
      for (const ParamInfo& p : q.layout().params)
        EXPECT_LE(rel_error(q.grads() + p.offset, r.grads() + p.offset, p.numel), 1e-4) << p.name;
      // Storage: the quantized linears plus the fp32 rest, well under the fp32 base.
      EXPECT_LT(q.base_bytes(), fp32_bytes);
    }
}

// bf16 products over the quantized base (onednn-bf16, lora.compute = bf16): the adapter
// gradients stay near the fp32 products' (cpu). Bound, per tensor (relative 2-norm):
// each base product rounds both operands (error <= (2u + u^2)|a||b| per term, u = 2^-8);
// the terms' errors have random signs, so a product's output is off by about 2u / sqrt(3)
// of its own size (RMS of a uniform error times the RMS of the terms, which for
// random-sign sums is the size of the sum), and an adapter's gradient passes through at
// most 2 (4 L + 1) base products (forward and backward through every block linear and
// the head): 2u per product, summed without cancellation.
TEST(Lora, Bf16BaseProductsKeepTheAdapterGradients) {
  const kernels::Backend* bf16 = nullptr;
  for (const kernels::Backend* b : kernels::available_backends())
    if (b->gemm_inputs == DType::bf16) bf16 = b;
  if (!bf16) GTEST_SKIP() << "no native bf16 products on this CPU";
  for (const char* quant : {"nf4", "bf16"})
    for (Family f : {Family::gpt2, Family::llama}) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      const ModelConfig c = tiny_family(f);
      LoraConfig l = lora_cfg(4);
      l.quantize = quant;
      Model m(c);
      fill_random_params(m, 31);
      m.enable_lora(l, 2);
      fill_random_params(m, 41);  // B != 0
      const TokenData d = random_token_data(c, 2, 9, 8, 4);
      const Batch b = d.batch(2, 9);
      m.set_backend(kernels::backend("cpu"));
      m.forward_backward(b, 0.1f, kernels::Grad::set);
      const std::vector<float> g32(m.grads(), m.grads() + m.flat_size());
      m.set_backend(*bf16);
      m.forward_backward(b, 0.1f, kernels::Grad::set);
      const double u = kEpsBF16 / 2, bound = 2 * (4 * c.n_layer + 1) * 2 * u;
      double largest = 0;
      for (const ParamInfo& p : m.layout().params) {
        const double e = rel_error(m.grads() + p.offset, g32.data() + p.offset, p.numel);
        largest = std::max(largest, e);
        expect_within(e, bound, std::string("bf16 base products: ") + p.name);
      }
      // Not fp32 in disguise: the gradients did change.
      EXPECT_GT(largest, 16 * kEpsF32);
    }
}

TEST(Lora, Nf4StorageCostsAbout4Point127Bits) {
  ModelConfig c = tiny_family(Family::llama);
  c.d_model = 256;
  c.d_ff = 512;
  c.n_head = 4;
  c.n_kv_head = 2;
  Model m(c);
  size_t linear = 0, vocab = 0;
  for (const ParamInfo& p : m.layout().params) {
    if (p.layer >= 0 && p.shape.size() == 2) linear += p.numel;
    if (p.name == "tok_emb.weight" || p.name == "lm_head.weight") vocab += p.numel;
  }
  const size_t rest = m.layout().total - linear - vocab;
  LoraConfig l = lora_cfg(4);
  l.quantize = "nf4";
  m.enable_lora(l, 1);
  // The fp32 rest (with its alignment padding, < 16 floats per tensor), the embedding
  // and head in bf16, plus the linears.
  const double bits =
      8.0 * static_cast<double>(m.base_bytes() - m.base_layout().total * 4 - vocab * 2) / static_cast<double>(linear);
  EXPECT_NEAR(bits, 4.127, 0.01);
  EXPECT_LE(m.base_layout().total, rest + 16 * m.base_layout().params.size());
}

}  // namespace

namespace {

// Several adapters on one base, unmerged: the KV decoder over a LoRA model (fp32 or
// NF4 base) gives, for each adapter written into params(), the logits of that
// adapter's merged model; zero adapters give the base's. The base is never reloaded.
TEST(Lora, SwappedAdaptersDecodeAsTheirMergedModels) {
  for (const char* quant : {"none", "nf4"})
    for (Family f : {Family::gpt2, Family::llama}) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      const ModelConfig c = tiny_family(f);
      LoraConfig l = lora_cfg(4);
      l.quantize = quant;
      Model m(c);
      fill_random_params(m, 51);
      m.enable_lora(l, 3);
      std::vector<std::vector<float>> sets;
      for (uint64_t s : {61, 71}) {
        fill_random_params(m, s);
        sets.emplace_back(m.params(), m.params() + m.flat_size());
      }
      sets.emplace_back(m.flat_size(), 0.0f);  // none
      const std::vector<int32_t> prompt = {3, 14, 15, 9, 26, 5, 35};
      const int T = static_cast<int>(prompt.size()), Vp = c.padded_vocab_size;
      const Batch b{prompt.data(), nullptr, nullptr, nullptr, 1, T};
      KvDecoder dec(m, 16, T);
      (void)dec;
      for (size_t k = 0; k < sets.size(); ++k) {
        std::copy(sets[k].begin(), sets[k].end(), m.params());
        Model merged = merge_lora(m);
        std::vector<float> want(static_cast<size_t>(T) * Vp);
        merged.forward(b, want.data());
        KvDecoder d(m, 16, T);
        const float* got = d.feed(prompt.data(), T);
        EXPECT_LE(rel_error(got, want.data() + static_cast<size_t>(T - 1) * Vp, static_cast<size_t>(Vp)), 1e-5)
            << "adapter " << k;
      }
    }
}

}  // namespace

namespace {

// With a quantized base the frozen token embedding (and an untied head) is stored in
// bf16: each element is the fp32 value rounded to nearest even with 8 significant bits,
// so |e16 - e| <= half an ulp of bf16 at e's binade, 2^(k - 9) for e = m 2^k, m in
// [0.5, 1) (hence <= 2^-8 |e|, bf16's unit roundoff; no subnormals at these
// magnitudes), and a bf16-representable value is kept exactly. The embedding output the
// model computes is the plain encoder over that table, bit for bit.
TEST(Lora, Bf16EmbeddingWithinHalfAnUlp) {
  for (Family f : {Family::gpt2, Family::llama}) {
    SCOPED_TRACE(family_name(f));
    ModelConfig c = tiny_family(f);
    c.tie_embeddings = f == Family::gpt2;  // both the tied and the untied head
    Model m(c);
    fill_random_params(m, 7);
    std::vector<float> emb(m.param("tok_emb.weight"), m.param("tok_emb.weight") + static_cast<size_t>(c.padded_vocab_size) * c.d_model);
    emb[0] = 0x1.fep-3f;  // exactly representable in bf16: kept exactly
    std::copy(emb.begin(), emb.end(), m.param("tok_emb.weight"));
    LoraConfig l = lora_cfg(4);
    l.quantize = "nf4";
    m.enable_lora(l, 3);
    ASSERT_NE(m.base_embedding(), nullptr);
    std::vector<float> got(emb.size());
    m.base_weight("tok_emb.weight", got.data());
    double worst = 0;  // error over the half-ulp bound
    size_t changed = 0;
    for (size_t i = 0; i < emb.size(); ++i) {
      if (emb[i] == 0) {
        EXPECT_EQ(got[i], 0.0f);
        continue;
      }
      int k = 0;
      std::frexp(emb[i], &k);
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - emb[i]) / std::ldexp(1.0, k - 9));
      changed += got[i] != emb[i];
    }
    EXPECT_LE(worst, 1.0);
    EXPECT_GT(worst, 0.5);  // the bound is met, not loose: some element rounds by over a quarter ulp
    EXPECT_GT(changed, emb.size() / 2);  // random fp32 values: most do round (the check can fail)
    EXPECT_EQ(got[0], 0x1.fep-3f);
    // The embedding output: encoder_forward over the dequantized table, bit for bit.
    const std::vector<int32_t> tok = {0, 5, 60, 17, 5};
    const std::vector<int32_t> pos = {0, 1, 2, 3, 4};
    std::vector<float> want(tok.size() * c.d_model), out(want.size());
    std::vector<float> wpe;
    if (f == Family::gpt2) {
      wpe.resize(static_cast<size_t>(c.max_seq_len) * c.d_model);
      m.base_weight("pos_emb.weight", wpe.data());
    }
    m.context().ops().encoder_forward(want.data(), tok.data(), pos.data(), got.data(), wpe.empty() ? nullptr : wpe.data(),
                                      static_cast<int>(tok.size()), c.d_model);
    kernels::encoder_forward_q(out.data(), tok.data(), pos.data(), *m.base_embedding(), wpe.empty() ? nullptr : wpe.data(),
                               static_cast<int>(tok.size()), c.d_model);
    EXPECT_EQ(out, want);
  }
}

// Model::with_lora reads a base from a source chunk by chunk into its storage and gives
// the same model as filling a Model and enable_lora: the same base bytes, every base
// tensor bit for bit, the same adapters, the same logits. init_source draws
// init_weights' floats (the source the benchmark and LoRA pretraining use).
TEST(Lora, BaseBuiltFromASourceEqualsEnableLora) {
  for (const char* quant : {"none", "bf16", "nf4"})
    for (Family f : {Family::gpt2, Family::llama}) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      ModelConfig c = tiny_family(f);
      c.d_model = 32;  // rows of 32 floats: a 64-float NF4 block spans two rows
      LoraConfig l = lora_cfg(4);
      l.quantize = quant;
      Model a(c);
      a.init_weights(99);
      a.enable_lora(l, 5);
      Model b = Model::with_lora(c, l, 5, Model::init_source(c, 99));
      EXPECT_EQ(a.base_bytes(), b.base_bytes());
      ASSERT_EQ(a.flat_size(), b.flat_size());
      EXPECT_EQ(0, std::memcmp(a.params(), b.params(), a.flat_size() * sizeof(float)));
      for (const ParamInfo& p : make_param_layout(c).params) {
        if (c.tie_embeddings && p.name == "lm_head.weight") continue;
        std::vector<float> x(p.numel), y(p.numel);
        a.base_weight(p.name, x.data());
        b.base_weight(p.name, y.data());
        EXPECT_EQ(x, y) << p.name;
      }
      const TokenData d = random_token_data(c, 2, 9, 8, 4);
      EXPECT_EQ(logits_of(a, d.batch(2, 9)), logits_of(b, d.batch(2, 9)));
    }
  // init_source's floats are init_weights' (pairs of Box-Muller draws split at odd rows too).
  const ModelConfig c = tiny_family(Family::gpt2);
  Model m(c);
  m.init_weights(7);
  const BaseFill src = Model::init_source(c, 7);
  for (const ParamInfo& p : m.layout().params) {
    std::vector<float> got(p.numel);
    const int64_t rows = p.shape[0], w = static_cast<int64_t>(p.numel) / rows;
    for (int64_t r = 0; r < rows; r += 3) src(p, r, std::min<int64_t>(3, rows - r), got.data() + r * w);
    EXPECT_EQ(0, std::memcmp(got.data(), m.param(p.name), p.numel * sizeof(float))) << p.name;
  }
}

}  // namespace

namespace {

// Dropout by global position (set_lora_dropout_rows): one call over 4 samples draws the
// masks of two calls over 2 + 2 (the second starts at sample 2 by itself), so the
// losses and adapter gradients agree to rounding: each row's loss depends on its own
// sample only, and only the GEMMs' row blocking and the order of adding the two
// micro-batches' gradients differ (measured here: ~1e-7 relative; bound 1e-5). Masks
// drawn per call instead (set_lora_dropout_counter) move them by far more: the check
// asserts that gap, so it cannot pass with masks that ignore position.
TEST(Lora, DropoutMasksFollowGlobalRows) {
  for (Family f : {Family::gpt2, Family::llama}) {
    SCOPED_TRACE(family_name(f));
    Pair p = make_pair(f, lora_cfg(3, {}, 0.3f));
    Model& m = p.lora;
    const TokenData d = random_token_data(m.config(), 4, 9, 17, 0);
    const Batch all = d.batch(4, 9);
    Batch half0 = all, half1 = all;
    half0.B = half1.B = 2;
    half1.tokens += 2 * 9;
    half1.targets += 2 * 9;
    const size_t n = m.flat_size();
    m.set_lora_dropout_rows(7, 0);
    const double one = m.forward_backward(all, 0.1f, kernels::Grad::set).sum;
    const std::vector<float> g1(m.grads(), m.grads() + n);
    m.set_lora_dropout_rows(7, 0);
    double two = m.forward_backward(half0, 0.1f, kernels::Grad::set).sum;
    two += m.forward_backward(half1, 0.1f, kernels::Grad::add).sum;
    const std::vector<float> g2(m.grads(), m.grads() + n);
    EXPECT_LE(std::fabs(one - two) / std::fabs(one), 1e-5);
    EXPECT_LE(rel_error(g2.data(), g1.data(), n), 1e-5);
    // Per-call masks: the second half draws the first half's masks, not its own.
    m.set_lora_dropout_counter(7);
    double per_call = m.forward_backward(half0, 0.1f, kernels::Grad::set).sum;
    m.set_lora_dropout_counter(7);
    per_call += m.forward_backward(half1, 0.1f, kernels::Grad::add).sum;
    EXPECT_GT(std::fabs(one - per_call) / std::fabs(one), 1e-3);
    // Another step: other masks.
    m.set_lora_dropout_rows(8, 0);
    EXPECT_NE(m.forward_backward(all, 0.1f, kernels::Grad::set).sum, one);
  }
}

}  // namespace
