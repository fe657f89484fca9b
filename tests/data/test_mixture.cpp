#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/data/mixture.h"

using namespace teddy;

TEST(Mixture, NormalisesWeights) {
  Mixture m({{"prose", 6}, {"code", 3}, {"multilingual", 1}});
  ASSERT_EQ(m.size(), 3u);
  EXPECT_DOUBLE_EQ(m.weight(0), 0.6);
  EXPECT_DOUBLE_EQ(m.weight(1), 0.3);
  EXPECT_DOUBLE_EQ(m.weight(2), 0.1);
  EXPECT_EQ(m.find("code"), 1);
  EXPECT_EQ(m.find("nope"), -1);
  EXPECT_EQ(m.to_string(), "prose=0.6,code=0.3,multilingual=0.1");
}

TEST(Mixture, RefusesNonPositiveOrNonFiniteWeights) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double w : {0.0, -0.5, nan, inf}) {
    EXPECT_THROW_WITH((Mixture({{"a", 1.0}, {"b", w}})), ConfigError, "weight of \"b\"");
  }
  EXPECT_THROW_WITH(Mixture(std::vector<std::pair<std::string, double>>{}), ConfigError, "at least one");
  EXPECT_THROW_WITH((Mixture({{"a", 1.0}, {"a", 2.0}})), ConfigError, "twice");
}

TEST(Mixture, ParsesFlagSyntax) {
  const Mixture m = Mixture::parse("prose=0.6,code=0.3,multilingual=0.1");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.name(2), "multilingual");
  EXPECT_DOUBLE_EQ(m.weight(0), 0.6);
  EXPECT_THROW_WITH(Mixture::parse("prose"), ConfigError, "name=weight");
  EXPECT_THROW_WITH(Mixture::parse("prose=abc"), ConfigError, "not a number");
  EXPECT_THROW_WITH(Mixture::parse("prose=0.5,code=0"), ConfigError, "> 0");
  EXPECT_THROW_WITH(Mixture::parse("prose=-1"), ConfigError, "> 0");
}

// Draw counts must match the weights within a 4-sigma binomial bound (a false
// failure has probability ~6e-5 per source, and the seed is fixed anyway).
TEST(Mixture, SamplingFollowsWeights) {
  const Mixture m({{"prose", 0.6}, {"code", 0.3}, {"multilingual", 0.1}});
  std::mt19937_64 rng(1234);
  const int n = 200000;
  std::vector<int> counts(m.size());
  for (int i = 0; i < n; ++i) counts[m.sample(rng())]++;
  for (size_t s = 0; s < m.size(); ++s) {
    const double p = m.weight(s);
    const double sigma = std::sqrt(n * p * (1 - p));
    EXPECT_LE(std::abs(counts[s] - n * p), 4 * sigma) << m.name(s) << ": " << counts[s] << " of " << n;
  }
}

TEST(Mixture, TinyWeightsAreStillReachableAndEdgesAreSafe) {
  const Mixture m({{"big", 1e6}, {"small", 1.0}});
  EXPECT_EQ(m.sample(0), 0u);
  EXPECT_EQ(m.sample(~uint64_t{0}), 1u);  // the top of the range belongs to the last source
  const Mixture one({{"only", 3.0}});
  EXPECT_EQ(one.sample(~uint64_t{0}), 0u);
  EXPECT_DOUBLE_EQ(one.weight(0), 1.0);
}
