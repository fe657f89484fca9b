// Several LoRA adapters in one generation batch over one loaded base (BatchDecoder,
// generate_batch): each row of a mixed batch (adapters a, b and none interleaved,
// prompts of different lengths, sequences finishing at different steps) computes its
// own adapter's model. Over fp32 and NF4 bases, both families:
//  - logits per row against the adapter's merged model (merge_lora), by the float64-twin
//    rule (model_f64.h) with the same prompt decoded alone, unmerged, as the plain side,
//    and within the 1e-5 relative of the merged model's fp32 logits;
//  - greedy completions token-identical to each prompt decoded alone with its adapter
//    merged and alone unmerged, and seeded sampling identical to alone unmerged;
//  - the adapters are read from their own buffers: params() holds garbage throughout.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/model_f64.h"
#include "model/tiny_models.h"
#include "teddy/core/error.h"
#include "teddy/model/batch_decoder.h"
#include "teddy/model/generate.h"
#include "teddy/model/generate_batch.h"
#include "teddy/model/kv_decoder.h"
#include "teddy/model/lora.h"
#include "teddy/model/model.h"

using namespace teddy;
using namespace teddy::test;

namespace {

// A LoRA model (fp32 or NF4 base) with two random adapters (B != 0) in their own
// buffers, the merged model of each and of none (the base alone, dequantized).
struct TwoAdapters {
  Model m;
  std::vector<std::vector<float>> sets;  // a, b
  std::vector<Model> merged;             // a, b, none
  // Writes adapter k's values (k = -1: zeros, the base alone) into params(), for the
  // single-sequence (KvDecoder / generate) runs.
  void use(int k) {
    if (k < 0) std::fill(m.params(), m.params() + m.flat_size(), 0.0f);
    else std::copy(sets[k].begin(), sets[k].end(), m.params());
  }
  void garble() { fill_random_params(m, 999); }  // the batched runs must not read params()
  Model& merged_of(int k) { return merged[k < 0 ? 2 : k]; }
  std::vector<const float*> buffers() const { return {sets[0].data(), sets[1].data()}; }
};

TwoAdapters make_setup(Family f, const char* quant) {
  ModelConfig c = tiny_family(f);
  c.max_seq_len = 32;  // room for prompts of 1..9 tokens plus a dozen steps
  c.validate();
  LoraConfig l;
  l.r = 4;
  l.alpha = 8;
  l.quantize = quant;
  TwoAdapters s{Model(c), {}, {}};
  fill_random_params(s.m, 51);
  s.m.enable_lora(l, 3);
  for (uint64_t seed : {61, 71}) {
    fill_random_params(s.m, seed);
    s.sets.emplace_back(s.m.params(), s.m.params() + s.m.flat_size());
  }
  for (int k : {0, 1, -1}) {
    s.use(k);
    s.merged.push_back(merge_lora(s.m));
  }
  s.garble();
  return s;
}

// Last-row logits of a full forward over seq.
std::vector<float> last_logits(Model& m, const std::vector<int32_t>& seq) {
  const size_t Vp = m.config().padded_vocab_size;
  std::vector<float> all(seq.size() * Vp);
  const Batch b{seq.data(), nullptr, nullptr, nullptr, 1, static_cast<int>(seq.size())};
  m.forward(b, all.data());
  return std::vector<float>(all.end() - static_cast<std::ptrdiff_t>(Vp), all.end());
}
// The same from the float64 twin of m (a plain model: a merged one).
std::vector<double> last_logits64(const Model& m, const std::vector<int32_t>& seq) {
  const size_t Vp = m.config().padded_vocab_size;
  const Batch b{seq.data(), nullptr, nullptr, nullptr, 1, static_cast<int>(seq.size())};
  const F64Pass t = f64_pass(m, m.params(), b, true, false);
  return std::vector<double>(t.logits.end() - static_cast<std::ptrdiff_t>(Vp), t.logits.end());
}

const char* const kQuants[] = {"none", "nf4"};
const Family kFamilies[] = {Family::gpt2, Family::llama};

TEST(MultiLora, MixedBatchRowsComputeTheirOwnAdaptersModel) {
  for (const char* quant : kQuants)
    for (Family f : kFamilies) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      TwoAdapters s = make_setup(f, quant);
      const ModelConfig& c = s.m.config();
      const size_t Vp = c.padded_vocab_size;
      // Six sequences, adapters interleaved, prompts of 3..9 tokens and one of 1.
      const std::vector<int> adapter = {0, -1, 1, 0, 1, -1};
      const std::vector<int> plen = {3, 7, 5, 1, 9, 4};
      const int S = static_cast<int>(adapter.size()), steps = 12;
      std::vector<std::vector<int32_t>> seq(S);
      for (int i = 0; i < S; ++i) seq[i] = randint(plen[i], 0, c.vocab_size, 100 + i);
      BatchDecoder dec(s.m, S, c.max_seq_len, 9, s.buffers());
      // Alone, unmerged: one KvDecoder per sequence over params() = its adapter.
      std::vector<Dist> pooled(S);
      std::vector<std::unique_ptr<KvDecoder>> alone;
      auto check = [&](int i, const float* got, const float* plain) {
        Model& mg = s.merged_of(adapter[i]);
        const std::vector<float> want = last_logits(mg, seq[i]);
        const std::vector<double> want64 = last_logits64(mg, seq[i]);
        pooled[i].add(dist(got, plain, want64.data(), Vp));
        EXPECT_LE(rel_error(got, want.data(), Vp), 1e-5) << "sequence " << i << " at length " << seq[i].size();
      };
      std::vector<std::vector<float>> plain(S, std::vector<float>(Vp));
      auto run_alone = [&](int i, const int32_t* t, int n) {
        s.use(adapter[i]);
        const float* p = alone[i]->feed(t, n);
        std::copy(p, p + Vp, plain[i].begin());
        s.garble();
      };
      for (int i = 0; i < S; ++i) {
        alone.push_back(std::make_unique<KvDecoder>(s.m, c.max_seq_len, 9));
        run_alone(i, seq[i].data(), plen[i]);
        dec.start(i, adapter[i]);
        check(i, dec.feed(i, seq[i].data(), plen[i]), plain[i].data());
      }
      // Steps over the live sequences in a changing order; sequence i stops after
      // 12 - i steps, so the batch shrinks (ragged finish), adapters stay interleaved.
      for (int t = 0; t < steps; ++t) {
        std::vector<int> live;
        for (int i = 0; i < S; ++i)
          if (t < steps - i) live.push_back(i);
        if (t % 2) std::reverse(live.begin(), live.end());
        std::vector<int32_t> toks;
        for (int i : live) toks.push_back(randint(1, 0, c.vocab_size, 1000 + 37 * t + i)[0]);
        const float* got = dec.step(live.data(), toks.data(), static_cast<int>(live.size()));
        for (size_t j = 0; j < live.size(); ++j) {
          const int i = live[j];
          seq[i].push_back(toks[j]);
          run_alone(i, &toks[j], 1);
          check(i, got + j * Vp, plain[i].data());
          EXPECT_EQ(dec.length(i), static_cast<int>(seq[i].size()));
        }
      }
      for (int i = 0; i < S; ++i) expect_rule(pooled[i], "batched logits of sequence " + std::to_string(i));
    }
}

TEST(MultiLora, MixedBatchGreedyEqualsEachPromptAlone) {
  for (const char* quant : kQuants)
    for (Family f : kFamilies) {
      SCOPED_TRACE(std::string(quant) + " " + std::string(family_name(f)));
      TwoAdapters s = make_setup(f, quant);
      const ModelConfig& c = s.m.config();
      // Eight requests over three slots (continuous batching), adapters interleaved,
      // prompts of 2..8 tokens, budgets of 5..14 tokens.
      std::vector<GenerationRequest> reqs;
      const int adapters[] = {0, 1, -1, 1, 0, -1, 0, 1};
      for (int i = 0; i < 8; ++i)
        reqs.push_back({randint(2 + (5 * i) % 7, 0, c.vocab_size, 200 + i), adapters[i], 5 + (3 * i) % 10});
      const std::vector<const float*> buf = s.buffers();
      SamplingOptions greedy;
      greedy.temperature = 0;
      std::vector<size_t> done_order;
      const auto got = generate_batch(s.m, reqs, buf, 3, greedy, [&](size_t i, std::span<const int32_t> t) {
        done_order.push_back(i);
        EXPECT_EQ(t.size(), static_cast<size_t>(reqs[i].max_new_tokens));
      });
      ASSERT_EQ(got.size(), reqs.size());
      EXPECT_EQ(done_order.size(), reqs.size());
      SamplingOptions sampled;
      sampled.temperature = 0.9f;
      sampled.top_k = 20;
      sampled.seed = 7;
      const auto got_sampled = generate_batch(s.m, reqs, buf, 3, sampled);
      for (size_t i = 0; i < reqs.size(); ++i) {
        const GenerationRequest& r = reqs[i];
        EXPECT_EQ(got[i], generate(s.merged_of(r.adapter), r.prompt, r.max_new_tokens, greedy))
            << "request " << i << " vs merged";
        s.use(r.adapter);
        EXPECT_EQ(got[i], generate(s.m, r.prompt, r.max_new_tokens, greedy)) << "request " << i << " vs unmerged";
        EXPECT_EQ(got_sampled[i], generate(s.m, r.prompt, r.max_new_tokens, sampled))
            << "request " << i << " sampled vs unmerged";
        s.garble();
      }
      // The adapters matter: adapter a and b and none answer differently somewhere.
      std::vector<GenerationRequest> same(3, reqs[0]);
      same[1].adapter = 1;
      same[2].adapter = -1;
      const auto three = generate_batch(s.m, same, buf, 3, greedy);
      EXPECT_NE(three[0], three[1]);
      EXPECT_NE(three[0], three[2]);
      EXPECT_NE(three[1], three[2]);
    }
}

TEST(MultiLora, BadUseIsRefused) {
  TwoAdapters s = make_setup(Family::llama, "none");
  const ModelConfig& c = s.m.config();
  BatchDecoder dec(s.m, 2, 8, 4, s.buffers());
  EXPECT_THROW(dec.start(0, 2), Error);   // adapter index out of range
  EXPECT_THROW(dec.start(2, 0), Error);   // no such slot
  dec.start(0, 0);
  dec.start(1, -1);
  const int32_t t[4] = {1, 2, 3, 4};
  const int both[2] = {0, 1}, twice[2] = {1, 1};
  EXPECT_THROW(dec.step(twice, t, 2), Error);  // a sequence twice in one step
  dec.feed(0, t, 4);
  dec.feed(0, t, 4);
  EXPECT_THROW(dec.step(both, t, 2), Error);   // sequence 0 is full (8 positions)
  EXPECT_EQ(dec.length(1), 0);                 // and nothing was fed
  Model plain(c);
  EXPECT_THROW(BatchDecoder(plain, 1, 8, 4, s.buffers()), Error);  // adapters without LoRA
  SamplingOptions greedy;
  greedy.temperature = 0;
  std::vector<GenerationRequest> reqs = {{{1, 2}, 0, 3}, {{1, 2}, 5, 3}};
  EXPECT_THROW(generate_batch(s.m, reqs, s.buffers(), 2, greedy), Error);  // request 1: adapter 5
  reqs[1] = {{}, 0, 3};
  EXPECT_THROW(generate_batch(s.m, reqs, s.buffers(), 2, greedy), Error);  // empty prompt
  reqs[1] = {{1, 2}, 0, 3};
  EXPECT_THROW(generate_batch(s.m, reqs, s.buffers(), 0, greedy), ConfigError);  // batch 0
  EXPECT_TRUE(generate_batch(s.m, std::vector<GenerationRequest>{}, s.buffers(), 4, greedy).empty());
}

}  // namespace
