// Arena ratings: hand-computed cases, recovery of known ratings from simulated
// battles, and agreement with an independent reference (tests/reference/arena_reference.py,
// the MM algorithm in numpy) on the same battles.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "eval/eval_fixtures.h"
#include "teddy/core/error.h"
#include "teddy/eval/arena.h"

namespace teddy {
namespace {

using test::scratch_dir;
using test::write_text;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd << "\n" << out;
  return out;
}

TEST(EvalArena, HandComputedTiesCountHalf) {
  // A beats B twice and they tie twice: A scores 3 of 4, so 10^((R_A - R_B)/400) = 3.
  const std::vector<Battle> b{{"A", "B", 1}, {"B", "A", 0}, {"A", "B", 0.5}, {"B", "A", 0.5}};
  const ArenaResult r = arena_ratings(b, 0);
  ASSERT_EQ(r.ratings.size(), 2u);
  EXPECT_EQ(r.ratings[0].model, "A");
  const double d = 400 * std::log10(3.0);
  // Newton stops at a step below 1e-12 (x400 rating points): 1e-9 is far above it.
  EXPECT_NEAR(r.ratings[0].rating, 1000 + d / 2, 1e-9);
  EXPECT_NEAR(r.ratings[1].rating, 1000 - d / 2, 1e-9);
  EXPECT_EQ(r.ratings[0].battles, 4);
  EXPECT_DOUBLE_EQ(r.win_rate[0][1], 0.75);
  EXPECT_DOUBLE_EQ(r.win_rate[1][0], 0.25);
  // Only ties: equal ratings.
  const ArenaResult t = arena_ratings({{"A", "B", 0.5}, {"A", "B", 0.5}}, 0);
  EXPECT_NEAR(t.ratings[0].rating, 1000, 1e-9);
  EXPECT_NEAR(t.ratings[1].rating, 1000, 1e-9);
}

TEST(EvalArena, UndefinedRatingsAreRefused) {
  EXPECT_THROW(arena_ratings({{"A", "B", 1}, {"A", "B", 1}}, 0), Error);  // B never scored
  EXPECT_THROW(arena_ratings({{"A", "B", 1}, {"A", "B", 0}, {"C", "D", 1}, {"C", "D", 0}}, 0), Error);  // never met
  const auto dir = scratch_dir("arena_bad");
  write_text(dir / "b.jsonl", R"({"model_a": "x", "model_b": "y", "winner": "model_a"})" "\n"
                              R"({"model_a": "x", "model_b": "y", "winner": "x"})" "\n");
  try {
    read_battles((dir / "b.jsonl").string());
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:2: field \"winner\" must be"), std::string::npos) << e.what();
  }
}

// Battles between models of known ratings (mean 1000), pairs uniform, no ties, plus
// `ties` ties between random pairs (for the reference comparison only).
std::vector<Battle> simulate(const std::vector<double>& truth, int n, int ties, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<size_t> m(0, truth.size() - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Battle> out;
  for (int k = 0; k < n + ties; ++k) {
    size_t a = m(g), b = m(g);
    while (b == a) b = m(g);
    const double pa = 1 / (1 + std::pow(10.0, (truth[b] - truth[a]) / 400));
    out.push_back({"m" + std::to_string(a), "m" + std::to_string(b), k >= n ? 0.5 : (u(g) < pa ? 1.0 : 0.0)});
  }
  return out;
}

TEST(EvalArena, RecoversKnownRatingsInsideTheBootstrapInterval) {
  const std::vector<double> truth{1200, 1100, 1000, 900, 800};
  const ArenaResult r = arena_ratings(simulate(truth, 5000, 0, 11), 300, 2);
  EXPECT_EQ(r.bootstrap_failed, 0);
  for (const ArenaRating& a : r.ratings) {
    const double t = truth[static_cast<size_t>(std::stoi(a.model.substr(1)))];
    EXPECT_LE(a.lower, t) << a.model;
    EXPECT_GE(a.upper, t) << a.model;
    EXPECT_LE(a.lower, a.rating);
    EXPECT_GE(a.upper, a.rating);
    EXPECT_EQ(a.battles > 1500 && a.battles < 2500, true) << a.battles;  // 2 of 5 per battle
  }
  EXPECT_EQ(r.ratings.front().model, "m0");
  EXPECT_EQ(r.ratings.back().model, "m4");
}

TEST(EvalArena, MatchesTheIndependentReference) {
  const auto dir = scratch_dir("arena_ref");
  const std::vector<Battle> b = simulate({1150, 1080, 1000, 950, 820}, 3000, 400, 5);
  std::string lines;
  for (const Battle& x : b)
    lines += nlohmann::json({{"model_a", x.model_a}, {"model_b", x.model_b},
                             {"winner", x.score_a == 1 ? "model_a" : x.score_a == 0 ? "model_b" : "tie"}})
                 .dump() +
             "\n";
  write_text(dir / "battles.jsonl", lines);
  const nlohmann::json ref = nlohmann::json::parse(
      run("/usr/bin/python3 " + std::string(TEDDY_SOURCE_DIR) + "/tests/reference/arena_reference.py " + (dir / "battles.jsonl").string()));
  const nlohmann::json ours = nlohmann::json::parse(
      run(std::string(TEDDY_BINARY_DIR) + "/teddy arena --json --bootstrap 0 --battles " + (dir / "battles.jsonl").string()));
  ASSERT_EQ(ours["ratings"].size(), ref.size());
  for (const auto& [model, v] : ref.items())
    // Both converge to the same maximum: Newton to steps < 4e-10 rating points, MM to
    // relative changes < 1e-14; 1e-6 points is the agreement the issue asks.
    EXPECT_NEAR(ours["ratings"][model]["rating"].get<double>(), v.get<double>(), 1e-6) << model;
  EXPECT_EQ(ours["battles"], 3400);
}

}  // namespace
}  // namespace teddy
