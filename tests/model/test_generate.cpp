// Generation: the KV-cache path against full recomputation, sampling rules, stops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/model_f64.h"
#include "teddy/core/error.h"
#include "teddy/model/generate.h"
#include "teddy/model/kv_decoder.h"
#include "teddy/model/sampler.h"

namespace teddy {
namespace {

ModelConfig tiny(const char* preset) {
  ModelConfig c = ModelConfig::preset(preset);
  c.vocab_size = 500;  // 12 padded ids
  c.padded_vocab_size = ModelConfig::pad_vocab(500);
  return c;
}
std::vector<ModelConfig> all_configs() {
  ModelConfig gqa = tiny("llama-tiny");
  gqa.n_head = 4;
  gqa.n_kv_head = 2;
  gqa.tie_embeddings = true;
  gqa.bias = true;
  // Qwen2's q/k/v biases with Llama 3.1's RoPE scaling (head_dim 16: frequencies in all
  // three bands against 64/4 and 64/1), so the cache path reads the same table.
  ModelConfig qwen = tiny("llama-tiny");
  qwen.qkv_bias = true;
  qwen.rope_scaling.type = RopeScaling::Type::llama3;
  qwen.rope_scaling.original_max_position_embeddings = 64;
  return {tiny("gpt2-tiny"), tiny("llama-tiny"), gqa, qwen};
}
std::string label(const ModelConfig& c) {
  return std::string(family_name(c.family)) + " NH=" + std::to_string(c.n_head) + " NKV=" + std::to_string(c.n_kv_head);
}

// GPT-2 init, then the embeddings scaled up so next-token distributions are peaked:
// greedy choices then sit far from ties and both paths must agree exactly.
Model make_model(const ModelConfig& c, uint64_t seed) {
  Model m(c);
  m.init_weights(seed);
  for (const char* name : {"tok_emb.weight", "lm_head.weight"}) {
    if (c.tie_embeddings && std::string(name) == "lm_head.weight") continue;
    float* w = m.param(name);
    for (size_t i = 0; i < static_cast<size_t>(c.padded_vocab_size) * c.d_model; ++i) w[i] *= 50.0f;
  }
  return m;
}

const std::vector<int32_t> kPrompt = {3, 141, 59, 26, 499, 0, 77};

// Logits from the cache (prefill, then one token at a time) match the full forward.
TEST(Generate, KvCacheLogitsMatchFullForward) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m = make_model(c, 5);
    const std::vector<int32_t> seq = test::randint(24, 0, c.vocab_size, 9);
    const int P = 6, T = static_cast<int>(seq.size()), Vp = c.padded_vocab_size;
    std::vector<float> full(static_cast<size_t>(T) * Vp);
    Batch b;
    b.tokens = seq.data();
    b.B = 1;
    b.T = T;
    m.forward(b, full.data());
    // Each position's logits from the cache against the float64 twin (model/model_f64.h)
    // of the full forward: at most twice the full fp32 forward's distance (the rule; the
    // cache path attends one query row to the cached keys, another summation order).
    const test::F64Pass tw = test::f64_pass(m, b, true, false);
    auto check = [&](const float* got, int t) {
      const size_t at = static_cast<size_t>(t) * Vp;
      test::expect_rule(test::dist(got, full.data() + at, tw.logits.data() + at, Vp),
                        "KV-cache logits at position " + std::to_string(t));
    };
    KvDecoder dec(m, T, P);
    check(dec.feed(seq.data(), P), P - 1);
    for (int t = P; t < T; ++t) check(dec.feed(&seq[t], 1), t);
    EXPECT_EQ(dec.length(), T);
    EXPECT_THROW(dec.feed(&seq[0], 1), Error);  // full
  }
}

TEST(Generate, KvCacheGreedyEqualsNoCacheGreedy) {
  for (const ModelConfig& c : all_configs()) {
    SCOPED_TRACE(label(c));
    Model m = make_model(c, 11);
    SamplingOptions greedy;
    greedy.temperature = 0.0f;
    const std::vector<int32_t> with_cache = generate(m, kPrompt, 20, greedy, {}, true);
    const std::vector<int32_t> without = generate(m, kPrompt, 20, greedy, {}, false);
    ASSERT_EQ(with_cache.size(), 20u);
    EXPECT_EQ(with_cache, without);
    for (int32_t t : with_cache) EXPECT_LT(t, c.vocab_size);
    // Sampled (seeded) generation agrees across paths too.
    SamplingOptions sampled;
    sampled.temperature = 0.8f;
    sampled.top_k = 50;
    sampled.top_p = 0.9f;
    sampled.seed = 3;
    EXPECT_EQ(generate(m, kPrompt, 20, sampled, {}, true), generate(m, kPrompt, 20, sampled, {}, false));
  }
}

TEST(Generate, TopK1IsGreedyAndSeedsAreReproducible) {
  Model m = make_model(tiny("llama-tiny"), 2);
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  SamplingOptions top1;
  top1.temperature = 1.5f;
  top1.top_k = 1;
  EXPECT_EQ(generate(m, kPrompt, 20, top1), generate(m, kPrompt, 20, greedy));
  SamplingOptions s;
  s.temperature = 1.0f;
  s.seed = 99;
  const std::vector<int32_t> a = generate(m, kPrompt, 20, s);
  EXPECT_EQ(generate(m, kPrompt, 20, s), a);
  s.seed = 100;
  EXPECT_NE(generate(m, kPrompt, 20, s), a);
}

TEST(Generate, StopTokensCallbackAndContextLimit) {
  const ModelConfig c = tiny("gpt2-tiny");
  Model m = make_model(c, 4);
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  const std::vector<int32_t> free_run = generate(m, kPrompt, 10, greedy);
  ASSERT_EQ(free_run.size(), 10u);
  // A stop token ends generation right after it is emitted.
  SamplingOptions stop = greedy;
  stop.stop_tokens = {free_run[3]};
  const std::vector<int32_t> stopped = generate(m, kPrompt, 10, stop);
  const size_t first = std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin();
  EXPECT_EQ(stopped, std::vector<int32_t>(free_run.begin(), free_run.begin() + first + 1));
  // The callback sees every token and can stop early.
  std::vector<int32_t> seen;
  const std::vector<int32_t> cb = generate(m, kPrompt, 10, greedy, [&](int32_t t) {
    seen.push_back(t);
    return seen.size() < 4;
  });
  EXPECT_EQ(cb, std::vector<int32_t>(free_run.begin(), free_run.begin() + 4));
  EXPECT_EQ(seen, cb);
  // The context holds max_seq_len tokens: prompt + generated never exceeds it.
  for (bool cache : {true, false}) {
    std::vector<int32_t> long_prompt(c.max_seq_len - 3, 7);
    EXPECT_EQ(generate(m, long_prompt, 10, greedy, {}, cache).size(), 3u);
    long_prompt.resize(c.max_seq_len);
    EXPECT_TRUE(generate(m, long_prompt, 10, greedy, {}, cache).empty());
    long_prompt.push_back(7);
    EXPECT_THROW(generate(m, long_prompt, 10, greedy, {}, cache), Error);
  }
  EXPECT_THROW(generate(m, std::vector<int32_t>{}, 10, greedy), Error);
  EXPECT_THROW(generate(m, std::vector<int32_t>{500}, 10, greedy), Error);  // a padded id
  EXPECT_TRUE(generate(m, kPrompt, 0, greedy).empty());
}

TEST(Sampler, RejectsBadOptions) {
  SamplingOptions o;
  o.temperature = -1.0f;
  EXPECT_THROW(Sampler(o, 10), ConfigError);
  o = {};
  o.top_k = -2;
  EXPECT_THROW(Sampler(o, 10), ConfigError);
  o = {};
  o.top_p = 0.0f;
  EXPECT_THROW(Sampler(o, 10), ConfigError);
  o.top_p = 1.5f;
  EXPECT_THROW(Sampler(o, 10), ConfigError);
}

TEST(Sampler, FrequenciesTopKTopPAndPadding) {
  // Real vocabulary of 3 with probabilities 1/6, 2/6, 3/6; padded ids 3..7 carry huge
  // logits that must never be drawn.
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), 1e9f, 1e9f, 1e9f, 1e9f, 1e9f};
  SamplingOptions o;
  o.seed = 5;
  Sampler s(o, 3);
  std::vector<int> counts(3, 0);
  const int n = 30000;
  for (int i = 0; i < n; ++i) counts.at(s.sample(logits.data()))++;
  for (int id = 0; id < 3; ++id) EXPECT_NEAR(counts[id] / double(n), (id + 1) / 6.0, 0.015) << id;
  o.top_k = 2;  // drops id 0
  Sampler k2(o, 3);
  for (int i = 0; i < 2000; ++i) EXPECT_NE(k2.sample(logits.data()), 0);
  o.top_k = 0;
  o.top_p = 0.5f;  // id 2 alone holds 3/6
  Sampler p(o, 3);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(p.sample(logits.data()), 2);
  o.top_p = 0.6f;  // ids 2 and 1
  Sampler p2(o, 3);
  for (int i = 0; i < 2000; ++i) EXPECT_NE(p2.sample(logits.data()), 0);
  o.top_p = 1.0f;
  o.temperature = 0.0f;
  EXPECT_EQ(Sampler(o, 3).sample(logits.data()), 2);
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 3.0f, 3.0f}.data(), 3), 1);  // lowest id on ties
}

}  // namespace
}  // namespace teddy
