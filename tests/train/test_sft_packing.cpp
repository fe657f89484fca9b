// SFT batching: the layout of packed and padded rows, packed logits equal to each
// example run alone (document masking + restarting positions), the epoch stream and
// its exact seek, and vocabulary growth.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "model/model_f64.h"
#include "teddy/core/error.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/dataset.h"
#include "teddy/model/model.h"
#include "teddy/train/grow_vocab.h"
#include "teddy/train/sft_batches.h"

using namespace teddy;

namespace {

Tokenizer chat_bytes() {
  Tokenizer t = Tokenizer::bytes();
  add_template_specials(t, ChatTemplate{});
  return t;
}

SftExample qa(const std::string& q, const std::string& a) {
  SftExample ex;
  ex.turns = {{ChatRole::user, q}, {ChatRole::assistant, a}};
  return ex;
}

ModelConfig tiny(Family f) {
  ModelConfig c = ModelConfig::preset(f == Family::gpt2 ? "gpt2-tiny" : "llama-tiny");
  c.vocab_size = 259;
  c.padded_vocab_size = ModelConfig::pad_vocab(259);
  c.max_seq_len = 64;
  return c;
}

}  // namespace

TEST(SftPacking, PackedRowLayout) {
  const Tokenizer tok = chat_bytes();
  // Lengths 22, 23, 24 tokens -> 21, 22, 23 positions; rows of 48 positions.
  const std::vector<SftExample> ex = {qa("q", "a"), qa("q", "ab"), qa("q", "abc")};
  SftDatasetOptions o;
  o.seq_len = 48;
  const SftDataset ds(ex, tok, ChatTemplate{}, o);
  ASSERT_EQ(ds.positions(0), 21u);
  const std::vector<uint32_t> order = {0, 1, 2};
  const auto rows = plan_sft_rows(ds, order, SftBatching::pack);
  // First fit: 0 and 1 share row 0 (43 positions), 2 does not fit there (66 > 48).
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (SftRow{0, 1}));
  EXPECT_EQ(rows[1], (SftRow{2}));
  SftMicroBatch mb;
  fill_sft_micro_batch(ds, rows, SftBatching::pack, mb);
  ASSERT_EQ(mb.B, 2);
  ASSERT_EQ(mb.T, 48);
  EXPECT_EQ(mb.real_positions, 21 + 22 + 23);
  const Batch b = mb.batch();
  ASSERT_NE(b.pos, nullptr);
  ASSERT_NE(b.seg, nullptr);
  // Row 0: example 0 at [0, 21), example 1 at [21, 43), padding at [43, 48).
  for (int t = 0; t < 48; ++t) {
    const int doc = t < 21 ? 0 : t < 43 ? 1 : 2;
    const int pos = t < 21 ? t : t < 43 ? t - 21 : t - 43;
    EXPECT_EQ(b.seg[t], doc) << t;
    EXPECT_EQ(b.pos[t], pos) << t;
  }
  // Tokens are each example's inputs; targets its next tokens where they carry loss.
  for (int j = 0; j < 22; ++j) {
    EXPECT_EQ(b.tokens[21 + j], ds[1].tokens[j]);
    EXPECT_EQ(b.targets[21 + j], ds[1].loss[j + 1] ? ds[1].tokens[j + 1] : kIgnoreIndex);
  }
  // Loss only on "ab" and <|im_end|>: the last three positions of example 1.
  for (int t = 21; t < 43; ++t) EXPECT_EQ(b.targets[t] != kIgnoreIndex, t >= 40) << t;
  EXPECT_EQ(b.targets[40], 'a');
  EXPECT_EQ(b.targets[41], 'b');
  EXPECT_EQ(b.targets[42], 258);
  for (int t = 43; t < 48; ++t) EXPECT_EQ(b.targets[t], kIgnoreIndex);
  // Padding mode: one example a row, as wide as the longest.
  const std::vector<SftRow> prow = plan_sft_rows(ds, order, SftBatching::pad);
  fill_sft_micro_batch(ds, prow, SftBatching::pad, mb);
  EXPECT_EQ(mb.B, 3);
  EXPECT_EQ(mb.T, 23);
  EXPECT_EQ(mb.batch().pos, nullptr);
  EXPECT_EQ(mb.batch().seg, nullptr);
  EXPECT_EQ(mb.tokens[0 * 23 + 20], ds[0].tokens[20]);
  EXPECT_EQ(mb.targets[0 * 23 + 21], kIgnoreIndex);  // padding
}

// The logits of each example inside a packed batch equal its logits run alone.
class PackedLogits : public ::testing::TestWithParam<Family> {};

TEST_P(PackedLogits, EqualEachExampleAlone) {
  const Tokenizer tok = chat_bytes();
  std::vector<SftExample> ex;
  const char* answers[] = {"seven", "no", "the quick brown fox", "x", "4, 5, 6", "Zorbia"};
  for (int i = 0; i < 6; ++i) ex.push_back(qa("question " + std::to_string(i * 37), answers[i]));
  SftDatasetOptions o;
  o.seq_len = 64;
  const SftDataset ds(ex, tok, ChatTemplate{}, o);
  std::vector<uint32_t> order(ds.size());
  std::iota(order.begin(), order.end(), 0u);
  const auto rows = plan_sft_rows(ds, order, SftBatching::pack);
  ASSERT_LT(rows.size(), ds.size()) << "the test needs rows holding several examples";
  SftMicroBatch mb;
  fill_sft_micro_batch(ds, rows, SftBatching::pack, mb);

  Model model(tiny(GetParam()));
  model.init_weights(3);
  const size_t Vp = static_cast<size_t>(model.config().padded_vocab_size);
  const int V = model.config().vocab_size;
  std::vector<float> packed(static_cast<size_t>(mb.B) * mb.T * Vp);
  const LossSum packed_loss = model.forward(mb.batch(), packed.data());
  // Each example alone, in fp32 and in float64 (the twin, model/model_f64.h), laid out
  // at its place in the packed rows; pooled over all examples.
  std::vector<float> alone_at(packed.size(), 0.0f);
  std::vector<double> exact_at(packed.size(), 0.0);
  std::vector<float> packed_at;
  std::vector<float> alone_all;
  std::vector<double> exact_all;
  std::vector<size_t> where;  // packed index of each pooled entry
  LossSum alone_sum;
  double loss64 = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    size_t at = 0;
    for (uint32_t idx : rows[r]) {
      const ChatTokens& e = ds[idx];
      const int n = static_cast<int>(e.tokens.size()) - 1;
      std::vector<int32_t> tk(e.tokens.begin(), e.tokens.end() - 1), tg(static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) tg[j] = e.loss[j + 1] ? e.tokens[j + 1] : kIgnoreIndex;
      Batch b;
      b.tokens = tk.data();
      b.targets = tg.data();
      b.B = 1;
      b.T = n;
      std::vector<float> alone(static_cast<size_t>(n) * Vp);
      const LossSum l = model.forward(b, alone.data());
      const test::F64Pass tw = test::f64_pass(model, b, true, false);
      alone_sum.sum += l.sum;
      alone_sum.count += l.count;
      loss64 += tw.loss_sum;
      const size_t base = (r * mb.T + at) * Vp;
      for (size_t i = 0; i < alone.size(); ++i) {
        alone_at[base + i] = alone[i];
        exact_at[base + i] = tw.logits[i];
        where.push_back(base + i);
      }
      at += static_cast<size_t>(n);
    }
  }
  auto pooled = [&](const std::vector<float>& got) {  // got at the examples' places, vs alone and float64
    std::vector<float> g, a;
    std::vector<double> x;
    for (size_t k : where) g.push_back(got[k]), a.push_back(alone_at[k]), x.push_back(exact_at[k]);
    return test::dist(g.data(), a.data(), x.data(), g.size());
  };
  // The packed logits may err against float64 at most twice as much as each example run
  // alone (the rule of model/model_f64.h); the loss within 2 max |logits error| per
  // target plus the cross-entropy kernel's rounding (test::loss_sum_bound).
  test::expect_rule(pooled(packed), "packed logits (plain: each example alone)");
  EXPECT_EQ(packed_loss.count, alone_sum.count);
  const int N = mb.B * mb.T;
  test::expect_within(std::fabs(packed_loss.sum - loss64),
                      test::loss_sum_bound(packed.data(), exact_at.data(), mb.targets.data(), N, V, static_cast<int>(Vp),
                                           1, loss64),
                      "packed loss");
  test::expect_within(std::fabs(alone_sum.sum - loss64),
                      test::loss_sum_bound(alone_at.data(), exact_at.data(), mb.targets.data(), N, V, static_cast<int>(Vp),
                                           1, loss64),
                      "loss of the examples alone");
  // Without document masking the logits fail that bound by far: the check has teeth.
  Batch leaky = mb.batch();
  leaky.seg = nullptr;
  std::vector<float> leak(packed.size());
  model.forward(leaky, leak.data());
  const double leak_used = pooled(leak).used();
  EXPECT_GT(leak_used, 100) << "leaking across documents should be far outside rounding";
  std::printf("  without document masks the logits use %.3g times their bound\n", leak_used);
}

INSTANTIATE_TEST_SUITE_P(Families, PackedLogits, ::testing::Values(Family::gpt2, Family::llama),
                         [](const auto& info) { return std::string(family_name(info.param)); });

TEST(SftPacking, StreamEpochsAndSeek) {
  const Tokenizer tok = chat_bytes();
  std::vector<SftExample> ex;
  for (int i = 0; i < 37; ++i) ex.push_back(qa(std::string(static_cast<size_t>(i % 9 + 1), 'q'), std::to_string(i)));
  SftDatasetOptions o;
  o.seq_len = 64;
  const SftDataset ds(ex, tok, ChatTemplate{}, o);
  for (SftBatching mode : {SftBatching::pack, SftBatching::pad}) {
    SftBatchStream a(ds, mode, 11);
    // Each epoch visits every example exactly once.
    for (uint64_t e = 0; e < 3; ++e) {
      std::vector<uint32_t> ord = a.epoch_order(e);
      std::sort(ord.begin(), ord.end());
      for (uint32_t i = 0; i < ord.size(); ++i) ASSERT_EQ(ord[i], i);
    }
    EXPECT_NE(a.epoch_order(0), a.epoch_order(1));
    const size_t rows0 = a.epoch_rows(0);
    if (mode == SftBatching::pack) {
      EXPECT_LT(rows0, ds.size());
    }
    // Draw 2.5 epochs in micro-batches of 3 rows; a stream seeked to any row continues identically.
    std::vector<std::vector<int32_t>> drawn;
    SftMicroBatch mb;
    const int steps = static_cast<int>(rows0 * 5 / 2 / 3);
    for (int s = 0; s < steps; ++s) {
      a.next(3, mb);
      drawn.push_back(mb.tokens);
    }
    EXPECT_GE(a.epoch(), 2u);
    for (int from : {0, 1, steps / 2, steps - 1}) {
      SftBatchStream b(ds, mode, 11);
      b.seek(static_cast<uint64_t>(from) * 3);
      for (int s = from; s < steps; ++s) {
        b.next(3, mb);
        ASSERT_EQ(mb.tokens, drawn[s]) << sft_batching_name(mode) << ": seek to step " << from << ", step " << s;
      }
    }
    // Every example appears in an epoch's rows exactly once.
    std::multiset<uint32_t> seen;
    const auto ord = a.epoch_order(1);
    for (const SftRow& r : plan_sft_rows(ds, ord, mode)) seen.insert(r.begin(), r.end());
    EXPECT_EQ(seen.size(), ds.size());
    EXPECT_EQ(std::set<uint32_t>(seen.begin(), seen.end()).size(), ds.size());
  }
}

TEST(SftPacking, GrowVocabKeepsOldLogitsAndMeanInitsNewRows) {
  for (Family f : {Family::gpt2, Family::llama}) {
    ModelConfig c = tiny(f);
    c.vocab_size = 257;
    c.padded_vocab_size = 320;
    Model small(c);
    small.init_weights(5);
    // 259 fits the padding (320 rows); 400 needs more rows (448).
    for (int nv : {259, 400}) {
      Model big = grow_vocab(small, nv);
      EXPECT_EQ(big.config().vocab_size, nv);
      EXPECT_EQ(big.config().padded_vocab_size, nv == 259 ? 320 : 448);
      for (const char* name : {"tok_emb.weight", "lm_head.weight"}) {
        if (std::string(name) == "lm_head.weight" && c.tie_embeddings) continue;
        const size_t C = static_cast<size_t>(c.d_model);
        const float* old_rows = small.param(name);
        const float* rows = big.param(name);
        for (size_t col = 0; col < C; ++col) {
          double mean = 0;
          for (size_t r = 0; r < 257; ++r) mean += old_rows[r * C + col];
          mean /= 257;
          // The mean in double, rounded once to float: within u = eps/2 of the double
          // mean (summed in any order: 257 eps64 sum|x| more, for safety).
          double sum_abs = 0;
          for (size_t r = 0; r < 257; ++r) sum_abs += std::fabs(old_rows[r * C + col]);
          const double tol = test::kEpsF32 / 2 * std::fabs(mean) + test::kEpsF64 * sum_abs;
          for (size_t r = 257; r < static_cast<size_t>(nv); ++r) ASSERT_NEAR(rows[r * C + col], mean, tol) << name;
          for (size_t r = 0; r < 257; ++r) ASSERT_EQ(rows[r * C + col], old_rows[r * C + col]);
          for (size_t r = static_cast<size_t>(nv); r < static_cast<size_t>(big.config().padded_vocab_size); ++r)
            ASSERT_EQ(rows[r * C + col], 0.0f);
        }
      }
      // The old ids' logits do not move.
      std::vector<int32_t> tk = {1, 50, 100, 200, 256, 7};
      Batch b;
      b.tokens = tk.data();
      b.B = 1;
      b.T = 6;
      std::vector<float> l0(6 * 320), l1(static_cast<size_t>(6 * big.config().padded_vocab_size));
      small.forward(b, l0.data());
      big.forward(b, l1.data());
      // Against the small model's float64 twin (model/model_f64.h): the big model's logits
      // for the old ids may err at most twice as much as the small model's own (the rule;
      // only the classifier GEMM's width differs).
      const test::F64Pass tw = test::f64_pass(small, b, true, false);
      std::vector<float> got, plain;
      std::vector<double> exact;
      for (int t = 0; t < 6; ++t)
        for (int v = 0; v < 257; ++v) {
          got.push_back(l1[static_cast<size_t>(t) * big.config().padded_vocab_size + v]);
          plain.push_back(l0[t * 320 + v]);
          exact.push_back(tw.logits[t * 320 + v]);
        }
      test::expect_rule(test::dist(got.data(), plain.data(), exact.data(), got.size()), "old ids' logits after growing");
    }
    EXPECT_THROW(grow_vocab(small, 100), Error);
  }
}
