// Log-likelihood scoring against the model's own forward pass and loss, batching and
// shared rows against one row at a time, and lm-eval's rolling windows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/tiny_models.h"
#include "teddy/core/error.h"
#include "teddy/eval/loglikelihood.h"
#include "teddy/eval/perplexity.h"

namespace teddy {
namespace {

constexpr double kEps32 = 1.0 / (1 << 23);

std::vector<int32_t> random_tokens(std::mt19937& g, size_t n, int V) {
  std::uniform_int_distribution<int> d(0, V - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(g);
  return t;
}

// Requests of many shapes: short and long contexts (some longer than the model's
// context, so the input is cut from the left), 1- and multi-token continuations, and
// groups that share one input (single-token continuations after the same context).
std::vector<LoglikRequest> make_requests(const ModelConfig& c) {
  std::mt19937 g(5);
  std::vector<LoglikRequest> r;
  for (size_t ctx : {1u, 3u, 7u, 15u, 16u, 20u, 40u})
    for (size_t cont : {1u, 2u, 5u}) r.push_back({random_tokens(g, ctx, c.vocab_size), random_tokens(g, cont, c.vocab_size)});
  const std::vector<int32_t> shared = random_tokens(g, 9, c.vocab_size);
  for (int32_t t : {3, 4, 5, 6}) r.push_back({shared, {t}});
  return r;
}

// The model's own loss over a request's continuation, one row, no padding: the
// reference (its cross-entropy kernel, not the scorer's log-softmax).
double model_loss(Model& m, const LoglikRequest& q) {
  const int L = m.config().max_seq_len;
  std::vector<int32_t> all = q.context;
  all.insert(all.end(), q.continuation.begin(), q.continuation.end());
  const size_t start = all.size() > static_cast<size_t>(L) + 1 ? all.size() - L - 1 : 0;
  std::vector<int32_t> in(all.begin() + start, all.end() - 1), tgt(in.size(), kIgnoreIndex);
  for (size_t j = 0; j < q.continuation.size(); ++j) tgt[in.size() - q.continuation.size() + j] = q.continuation[j];
  Batch b;
  b.tokens = in.data();
  b.targets = tgt.data();
  b.B = 1;
  b.T = static_cast<int>(in.size());
  return m.forward(b).sum;
}

TEST(EvalLoglik, EqualsTheModelsOwnLoss) {
  for (Family f : {Family::gpt2, Family::llama}) {
    Model m(test::tiny_family(f));
    m.init_weights(3);
    const std::vector<LoglikRequest> reqs = make_requests(m.config());
    LoglikOptions one;
    one.max_batch = 1;  // each row alone: the same logits as the reference forward
    const std::vector<LoglikResult> res = score_loglikelihood(m, reqs, one);
    const int V = m.config().vocab_size;
    for (size_t i = 0; i < reqs.size(); ++i) {
      const double loss = model_loss(m, reqs[i]);
      // Same logits; the loss kernel sums V exps in float (relative error <= (V-1)u,
      // u = eps/2, so <= V eps/2 in the log) and stores each loss as float (|loss| u):
      // per continuation token V eps, and 2 eps |total| for the float sum of losses.
      const double tol = static_cast<double>(reqs[i].continuation.size()) * V * kEps32 + 2 * kEps32 * std::abs(loss);
      EXPECT_NEAR(-res[i].logprob, loss, tol) << family_name(f) << " request " << i;
    }
  }
}

TEST(EvalLoglik, BatchedAndSharedRowsEqualOneAtATime) {
  Model m(test::tiny_family(Family::llama));
  m.init_weights(4);
  const std::vector<LoglikRequest> reqs = make_requests(m.config());
  LoglikOptions one, many;
  one.max_batch = 1;
  many.max_batch = 8;
  size_t calls = 0;
  const auto a = score_loglikelihood(m, reqs, one);
  const auto b = score_loglikelihood(m, reqs, many, [&](size_t done, size_t total) {
    ++calls;
    EXPECT_LE(done, total);
  });
  // 21 rows of own inputs + 1 shared by 4 requests = 22 rows: 3 batches of <= 8.
  EXPECT_EQ(calls, 3u);
  // A row's logits in a padded batch of 8 vs alone: GEMMs of another shape may round
  // differently. Rule 3 of docs/TESTING.md: each token's log-probability moves by at
  // most 2 max|dz| (the l1 norm of its gradient in the logits). Measure max|dz| over
  // the positions read, by running the same batches through Model::forward here.
  double dz = 0;
  {
    const int L = m.config().max_seq_len, Vp = m.config().padded_vocab_size;
    for (size_t i = 0; i < reqs.size(); ++i) {
      std::vector<int32_t> all = reqs[i].context;
      all.insert(all.end(), reqs[i].continuation.begin(), reqs[i].continuation.end());
      const size_t start = all.size() > static_cast<size_t>(L) + 1 ? all.size() - L - 1 : 0;
      std::vector<int32_t> in(all.begin() + start, all.end() - 1);
      const int T = static_cast<int>(in.size());
      // Alone, and as row 3 of 8 padded to the model's full context.
      std::vector<float> z1(static_cast<size_t>(T) * Vp), z8(static_cast<size_t>(8) * L * Vp);
      Batch b1;
      b1.tokens = in.data();
      b1.B = 1;
      b1.T = T;
      m.forward(b1, z1.data());
      std::vector<int32_t> tok8(static_cast<size_t>(8) * L, 0);
      std::copy(in.begin(), in.end(), tok8.begin() + 3 * L);
      Batch b8;
      b8.tokens = tok8.data();
      b8.B = 8;
      b8.T = L;
      m.forward(b8, z8.data());
      for (int p = 0; p < T; ++p)
        for (int v = 0; v < Vp; ++v)
          dz = std::max(dz, std::abs(static_cast<double>(z1[static_cast<size_t>(p) * Vp + v]) -
                                     z8[(static_cast<size_t>(3) * L + p) * Vp + v]));
    }
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    const double tol = 2 * dz * static_cast<double>(reqs[i].continuation.size()) + 1e-12 * std::abs(a[i].logprob);
    EXPECT_NEAR(a[i].logprob, b[i].logprob, tol) << "request " << i << " (max |dz| " << dz << ")";
    if (dz == 0) EXPECT_EQ(a[i].greedy, b[i].greedy);
  }
}

TEST(EvalLoglik, GreedyFlagAndErrors) {
  Model m(test::tiny_family(Family::gpt2));
  m.init_weights(5);
  // The argmax continuation after a context is greedy; any other token is not.
  const std::vector<int32_t> ctx{1, 2, 3};
  std::vector<float> z(static_cast<size_t>(3) * m.config().padded_vocab_size);
  Batch b;
  b.tokens = ctx.data();
  b.B = 1;
  b.T = 3;
  m.forward(b, z.data());
  const float* last = z.data() + 2 * m.config().padded_vocab_size;
  const int best = static_cast<int>(std::max_element(last, last + m.config().vocab_size) - last);
  const std::vector<LoglikRequest> reqs{{ctx, {best}}, {ctx, {(best + 1) % m.config().vocab_size}}};
  const auto r = score_loglikelihood(m, reqs);
  EXPECT_TRUE(r[0].greedy);
  EXPECT_FALSE(r[1].greedy);
  EXPECT_GT(r[0].logprob, r[1].logprob);
  const std::vector<LoglikRequest> bad{{ctx, {m.config().vocab_size}}};
  EXPECT_THROW(score_loglikelihood(m, bad), Error);
  const std::vector<LoglikRequest> empty{{ctx, {}}};
  EXPECT_THROW(score_loglikelihood(m, empty), Error);
}

TEST(EvalLoglik, EncodePairMovesTrailingSpace) {
  const Tokenizer tok = Tokenizer::bytes();
  auto [c, x] = encode_pair(tok, "Answer: ", "B");
  EXPECT_EQ(c.size(), 7u);  // "Answer:" (bytes)
  EXPECT_EQ(x, (std::vector<int32_t>{' ', 'B'}));
  auto [c0, x0] = encode_pair(tok, "", "hi");
  EXPECT_EQ(c0, (std::vector<int32_t>{static_cast<int32_t>(tok.eot_id())}));
  EXPECT_EQ(x0, (std::vector<int32_t>{'h', 'i'}));
}

TEST(EvalLoglik, RollingWindowsPredictEveryTokenOnce) {
  const int L = 8;
  for (size_t n : {1u, 7u, 8u, 9u, 29u}) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(100 + i);
    const auto w = rolling_windows(t, 0, L);
    std::vector<int32_t> predicted;
    for (const LoglikRequest& q : w) {
      predicted.insert(predicted.end(), q.continuation.begin(), q.continuation.end());
      // The model reads at most L tokens, and the context is what precedes the
      // predicted tokens in the document (or the prefix).
      EXPECT_LE(q.context.size() + q.continuation.size() - 1, static_cast<size_t>(L) + (q.context.size() > 0 ? 0 : 1));
      if (q.context != std::vector<int32_t>{0}) {
        EXPECT_EQ(q.context.back() + 1, q.continuation.front());
      }
    }
    EXPECT_EQ(predicted, t) << "n=" << n;
    EXPECT_EQ(w.size(), (n + L - 1) / L);
  }
}

}  // namespace
}  // namespace teddy
