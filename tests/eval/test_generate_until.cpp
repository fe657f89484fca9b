// Generation until a stop sequence: the text is cut where the stop begins, greedy
// decoding is the same with and without the stop up to there, long prompts keep their
// end.
#include <gtest/gtest.h>

#include "model/tiny_models.h"
#include "teddy/eval/generate_until.h"

namespace teddy {
namespace {

TEST(EvalGenerateUntil, CutAtStop) {
  EXPECT_EQ(cut_at_stop("abc\ndef x", {"\ndef", "\nclass"}), "abc");
  EXPECT_EQ(cut_at_stop("abc", {"\ndef"}), "abc");
  EXPECT_EQ(cut_at_stop("Question: x", {"Question:"}), "");
  EXPECT_EQ(cut_at_stop("a#b\nc", {"\nc", "#"}), "a");  // the earliest of several
}

TEST(EvalGenerateUntil, StopsWhereTheStopSequenceBegins) {
  ModelConfig c = test::tiny_family(Family::gpt2);
  c.vocab_size = 257;  // the byte-level tokenizer's ids
  c.padded_vocab_size = 264;
  c.max_seq_len = 64;
  Model m(c);
  m.init_weights(11);
  const Tokenizer tok = Tokenizer::bytes();
  SamplingOptions greedy;
  greedy.temperature = 0;
  const GenerateUntilResult free = generate_until(m, tok, "Once upon", {}, 30, greedy);
  ASSERT_GE(free.text.size(), 8u) << "the model ended too early for this test";
  EXPECT_LE(free.new_tokens, 30);
  // Stop at the bytes at offset 5..7 of the free run: the same greedy text, cut there.
  const std::string stop = free.text.substr(5, 3);
  const GenerateUntilResult cut = generate_until(m, tok, "Once upon", {stop}, 30, greedy);
  EXPECT_EQ(cut.text, free.text.substr(0, free.text.find(stop)));
  EXPECT_LE(cut.new_tokens, 8);  // stopped as soon as the stop's last byte came
  // A prompt longer than the context keeps its last max(L - max_new, L / 2) tokens.
  const GenerateUntilResult longp = generate_until(m, tok, std::string(100, 'x'), {}, 10, greedy);
  EXPECT_EQ(longp.prompt_tokens, 54);
  EXPECT_EQ(longp.dropped_tokens, 46);
  const GenerateUntilResult half = generate_until(m, tok, std::string(100, 'x'), {}, 60, greedy);
  EXPECT_EQ(half.prompt_tokens, 32);
}

}  // namespace
}  // namespace teddy
