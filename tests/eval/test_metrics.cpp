// Metrics against hand-computed values and closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "teddy/core/error.h"
#include "teddy/eval/metrics.h"
#include "teddy/eval/prompts.h"
#include "teddy/eval/tasks.h"

namespace teddy {
namespace {

TEST(EvalMetrics, AccAndAccNormArithmetic) {
  // Choice 0 has the larger log-likelihood (acc picks it); per character, choice 1's
  // -6 / 12 = -0.5 beats choice 0's -3 / 3 = -1 (acc_norm picks it).
  const std::vector<double> ll{-3.0, -6.0, -9.0};
  const std::vector<std::string> choices{"abc", "twelve chars", "x"};
  const McPrediction p = mc_predict(ll, choices);
  EXPECT_EQ(p.pred, 0u);
  EXPECT_EQ(p.pred_norm, 1u);
  // Ties go to the first index (numpy's argmax).
  const std::vector<double> tie{-1.0, -1.0};
  EXPECT_EQ(argmax_first(tie), 0u);
  // Length in characters, as Python's len(): "héé" is 3 characters, 5 bytes.
  EXPECT_EQ(utf8_length("h\xc3\xa9\xc3\xa9"), 3u);
  const std::vector<double> ll2{-3.0, -3.3};
  const std::vector<std::string> uni{"h\xc3\xa9\xc3\xa9", "abcd"};  // -1.0 vs -0.825
  EXPECT_EQ(mc_predict(ll2, uni).pred_norm, 1u);
}

TEST(EvalMetrics, Gsm8kExtraction) {
  EXPECT_EQ(gsm8k_strict("so 3+4=7\n#### 7"), "7");
  EXPECT_EQ(gsm8k_strict("#### -3 and later #### 5"), "-3");  // the first "####"
  EXPECT_EQ(gsm8k_strict("#### 1,205"), "1,205");
  EXPECT_EQ(gsm8k_strict("no marker 12"), "[invalid]");
  EXPECT_EQ(gsm8k_flexible("costs $1,200 then 3.50 and finally -4"), "-4");  // the last number
  EXPECT_EQ(gsm8k_flexible("The answer is 18."), "18.");
  EXPECT_EQ(gsm8k_flexible("none"), "[invalid]");
  EXPECT_EQ(gsm8k_extract("It is 5.\nThe answer is 12"), "12");
  EXPECT_EQ(gsm8k_normalize("$1,205."), "1205");
  EXPECT_EQ(gsm8k_normalize("He has 3 + 4 = 7 apples.\n#### 7"), "7");
  EXPECT_EQ(gsm8k_normalize("a #### 1 b #### 2"), "2");  // greedy (?s).* reaches the last one
  EXPECT_TRUE(gsm8k_match(gsm8k_extract("so $1,205."), "1200 + 5\n#### 1,205"));
  EXPECT_TRUE(gsm8k_match(gsm8k_extract("#### -3"), "5 - 8 = -3\n#### -3"));
  EXPECT_FALSE(gsm8k_match(gsm8k_extract("#### 3"), "5 - 8 = -3\n#### -3"));
  // Strings, as lm-eval compares: 3.50 is not 3.5.
  EXPECT_FALSE(gsm8k_match(gsm8k_extract("#### 3.50"), "#### 3.5"));
  EXPECT_TRUE(gsm8k_match(gsm8k_extract("#### 3.5"), "#### 3.5"));
}

// C(n, k) in long double by the product formula (exact for these sizes to far below
// the 1e-12 asked: each factor rounds once, 100 factors at most, relative error
// < 100 * 2^-64 ~ 5e-18 per binomial).
long double binom(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  long double r = 1;
  for (int64_t i = 1; i <= k; ++i) r = r * static_cast<long double>(n - k + i) / static_cast<long double>(i);
  return r;
}

TEST(EvalMetrics, PassAtKEqualsTheCombinatorialFormula) {
  for (int64_t n : {1, 2, 5, 10, 20, 50, 100, 200})
    for (int64_t c = 0; c <= n; c += std::max<int64_t>(1, n / 7))
      for (int64_t k : {1, 2, 5, 10, 100}) {
        if (k > n) continue;
        const long double exact = 1.0L - binom(n - c, k) / binom(n, k);
        // The product form multiplies c factors in double: relative error <= c * 2^-53
        // of the product, so 1e-12 is far above it (c <= 200: 2.2e-14).
        EXPECT_NEAR(pass_at_k(n, c, k), static_cast<double>(exact), 1e-12) << "n=" << n << " c=" << c << " k=" << k;
      }
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 1), 0.3);  // pass@1 is c / n
  EXPECT_EQ(pass_at_k(10, 8, 5), 1.0);         // n - c < k
  EXPECT_THROW(pass_at_k(5, 6, 1), Error);
  EXPECT_THROW(pass_at_k(5, 1, 6), Error);
}

TEST(EvalMetrics, HumanEvalAggregation) {
  // Two tasks with 10 samples: pass@1 = mean(c/n), pass@10 = share with any pass.
  const auto j = humaneval_pass_at({{10, 3}, {10, 0}});
  EXPECT_DOUBLE_EQ(j["pass@1"].get<double>(), 0.15);
  EXPECT_DOUBLE_EQ(j["pass@10"].get<double>(), 0.5);
  EXPECT_FALSE(j.contains("pass@100"));  // fewer than 100 samples per task
  EXPECT_FALSE(humaneval_pass_at({{10, 3}, {5, 5}}).contains("pass@10"));
}

TEST(EvalMetrics, StandardError) {
  // Values 1, 0, 1, 0: sample sd = sqrt(1/3), stderr = sqrt(1/3) / 2.
  const std::vector<double> v{1, 0, 1, 0};
  EXPECT_NEAR(mean_stderr(v), std::sqrt(1.0 / 3.0) / 2.0, 1e-15);
}

}  // namespace
}  // namespace teddy

namespace teddy {
namespace {

// gsm8k_cot's strict filter: "The answer is (\-?[0-9\.\,]+)." takes the first match and
// needs one more character after the number (the regex's final unescaped ".").
TEST(EvalMetrics, Gsm8kCotStrictAndExtract) {
  EXPECT_EQ(gsm8k_cot_strict("So 21 - 15 = 6. The answer is 6."), "6");
  EXPECT_EQ(gsm8k_cot_strict("The answer is -1,205.\nThe answer is 3."), "-1,205");
  EXPECT_EQ(gsm8k_cot_strict("The answer is 6"), "[invalid]");  // nothing after the number
  EXPECT_EQ(gsm8k_cot_strict("The answer is 7 apples."), "7");
  EXPECT_EQ(gsm8k_cot_strict("#### 7"), "[invalid]");
  EXPECT_EQ(gsm8k_cot_extract("we get 3 and then 12"), "12");  // flexible: the last number
  EXPECT_TRUE(gsm8k_match(gsm8k_cot_extract("The answer is 1,205."), "1200 + 5\n#### 1,205"));
}

// The prompt byte for byte as lm-eval renders gsm8k_cot: tests/eval/data/gsm8k_cot_prompt.txt
// was rendered with Jinja2 from lm_eval/tasks/gsm8k/gsm8k-cot.yaml (EleutherAI
// lm-evaluation-harness 4e7e0d4: doc_to_text and doc_to_target templates over its
// fewshot_config samples, target_delimiter " ", fewshot_delimiter "\n\n").
TEST(EvalPrompts, Gsm8kCotMatchesLmEvalsRendering) {
  std::ifstream f(TEDDY_SOURCE_DIR "/tests/eval/data/gsm8k_cot_prompt.txt", std::ios::binary);
  ASSERT_TRUE(f) << "tests/eval/data/gsm8k_cot_prompt.txt";
  const std::string want((std::istreambuf_iterator<char>(f)), {});
  Gsm8kDoc d;
  d.question = "Tom has 3 apples and buys 4 more. How many apples does he have?";
  d.answer = "He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7";
  EXPECT_EQ(gsm8k_cot_prompt(d, 8), want);
  ASSERT_EQ(gsm8k_cot_exemplars().size(), 8u);
  EXPECT_EQ(gsm8k_cot_prompt(d, 0), "Q: " + d.question + "\nA:");
  EXPECT_EQ(gsm8k_cot_stop_sequences(), (std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}));
}

}  // namespace
}  // namespace teddy
