// Perplexity: a short document against the model's own loss; the same tokens as text
// and as a token shard give the same figures; the text-only metrics' arithmetic.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/eval_fixtures.h"
#include "teddy/data/shard.h"
#include "teddy/eval/tasks.h"

namespace teddy {
namespace {

constexpr double kEps32 = 1.0 / (1 << 23);

TEST(EvalPerplexity, TextShardAndTheModelsOwnLoss) {
  const test::fs::path dir = test::scratch_dir("perplexity");
  ModelConfig c = ModelConfig::preset("gpt2-tiny");
  c.vocab_size = 257;
  c.padded_vocab_size = ModelConfig::pad_vocab(257);  // max_seq_len 64
  Model m(c);
  m.init_weights(3);
  const Tokenizer tok = Tokenizer::bytes();
  const std::string text = "one two  three\nfour";  // 19 bytes, 4 words by lm-eval's split
  test::write_text(dir / "doc.txt", text);
  const EvalOptions o;
  const EvalResult r = eval_perplexity(m, tok, (dir / "doc.txt").string(), o);
  // The reference: one forward over <|endoftext|> + the text, every byte a target.
  std::vector<int32_t> in{static_cast<int32_t>(tok.eot_id())}, tgt;
  for (unsigned char ch : text) in.push_back(ch), tgt.push_back(ch);
  in.pop_back();
  Batch b;
  b.tokens = in.data();
  b.targets = tgt.data();
  b.B = 1;
  b.T = static_cast<int>(in.size());
  const LossSum loss = m.forward(b);
  // The loss kernel sums V exps in float per token (<= V eps/2 in each log) and the
  // float sum of losses adds 2 eps relative: the mean is off by <= V eps + 2 eps |mean|.
  const double mean = loss.sum / static_cast<double>(loss.count);
  EXPECT_NEAR(std::log(r.metrics["perplexity"].get<double>()), mean, c.vocab_size * kEps32 + 2 * kEps32 * mean);
  // Bytes = tokens here; words: re.split(r"\s+") gives 4 pieces.
  EXPECT_NEAR(r.metrics["bits_per_byte"].get<double>(), std::log2(r.metrics["perplexity"].get<double>()), 1e-12);
  const double log_ppl = std::log(r.metrics["perplexity"].get<double>());
  EXPECT_NEAR(std::log(r.metrics["word_perplexity"].get<double>()), log_ppl * 19.0 / 4.0, 1e-12 * log_ppl * 5);

  // The same tokens in a shard: the same requests, so the very same figure.
  std::vector<uint32_t> ids(text.begin(), text.end());
  test::fs::create_directories(dir / "shards");
  write_shard((dir / "shards" / "doc.bin").string(), ids, 257);
  const EvalResult s = eval_perplexity(m, tok, (dir / "shards").string(), o);
  EXPECT_EQ(s.metrics["perplexity"].get<double>(), r.metrics["perplexity"].get<double>());
  EXPECT_FALSE(s.metrics.contains("bits_per_byte"));  // no bytes behind shard tokens

  // Longer than the context: windows, every token once (n = 150 tokens, L = 64).
  test::write_text(dir / "long.txt", std::string(150, 'a'));
  const EvalResult w = eval_perplexity(m, tok, (dir / "long.txt").string(), o);
  EXPECT_EQ(w.info["windows"], 3);
  EXPECT_EQ(w.info["tokens"], 150.0);
}

}  // namespace
}  // namespace teddy
