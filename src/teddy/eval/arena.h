#pragma once
// Arena ratings from pairwise judgments, as Chatbot Arena computes them: a
// Bradley-Terry model fitted by maximum likelihood (logistic regression on
// "A beats B"), a tie counting as half a win for each side, on the Elo-like scale
// P(A beats B) = 1 / (1 + 10^((R_B - R_A) / 400)) with the mean rating at 1000;
// 95% intervals from the 2.5th and 97.5th percentiles over bootstrap resamples of
// the battles.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace teddy {

struct Battle {
  std::string model_a, model_b;
  double score_a = 0;  // 1: A won, 0: B won, 0.5: tie
};

// JSONL rows {"model_a", "model_b", "winner"}: winner "model_a", "model_b", "tie" or
// "tie (bothbad)" (Chatbot Arena's export). Errors name the file, line and field.
std::vector<Battle> read_battles(const std::string& path);

struct ArenaRating {
  std::string model;
  double rating = 0, lower = 0, upper = 0;  // lower/upper: the bootstrap 95% interval
  int64_t battles = 0;
};

struct ArenaResult {
  std::vector<ArenaRating> ratings;       // best first
  std::vector<std::string> models;        // win_rate's order (= ratings' order)
  std::vector<std::vector<double>> win_rate;  // [i][j]: share of i's battles against j that i won (ties half); -1: none
  std::vector<std::vector<int64_t>> counts;   // battles between i and j
  int bootstrap = 0, bootstrap_failed = 0;    // resamples drawn, and those without a finite fit (skipped)
};

// The maximum-likelihood ratings (mean 1000) of `models` from `battles` (indices
// into models for a and b). Throws Error when they are not finite: a model that won
// or lost every one of its battles, or models in groups that never met.
std::vector<double> fit_bradley_terry(size_t n_models, const std::vector<std::pair<size_t, size_t>>& pairs,
                                      const std::vector<double>& score_a);

// Fit plus `bootstrap` resamples (seeded); bootstrap = 0 gives lower = upper = rating.
ArenaResult arena_ratings(const std::vector<Battle>& battles, int bootstrap = 1000, uint64_t seed = 1);

}  // namespace teddy
