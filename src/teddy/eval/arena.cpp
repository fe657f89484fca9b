#include "teddy/eval/arena.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "teddy/core/error.h"
#include "teddy/eval/jsonl.h"

namespace teddy {

std::vector<Battle> read_battles(const std::string& path) {
  std::vector<Battle> out;
  for (const JsonlRow& r : read_jsonl(path)) {
    Battle b;
    b.model_a = require_string(r, path, "model_a");
    b.model_b = require_string(r, path, "model_b");
    const std::string w = require_string(r, path, "winner");
    if (w == "model_a") b.score_a = 1;
    else if (w == "model_b") b.score_a = 0;
    else if (w == "tie" || w == "tie (bothbad)") b.score_a = 0.5;
    else row_error(path, r.line, "field \"winner\" must be \"model_a\", \"model_b\" or \"tie\" (got \"" + w + "\")");
    if (b.model_a == b.model_b) row_error(path, r.line, "a model cannot battle itself (\"" + b.model_a + "\")");
    out.push_back(std::move(b));
  }
  if (out.empty()) throw FormatError(path + ": no battles");
  return out;
}

namespace {

constexpr double kScale = 400.0, kInit = 1000.0;

// Solves A x = b for a small dense symmetric positive definite A (Cholesky).
std::vector<double> solve_spd(std::vector<double> A, std::vector<double> b, size_t n) {
  for (size_t j = 0; j < n; ++j) {
    double d = A[j * n + j];
    for (size_t k = 0; k < j; ++k) d -= A[j * n + k] * A[j * n + k];
    if (!(d > 0)) throw Error("arena: the ratings are not determined by these battles");
    d = std::sqrt(d);
    A[j * n + j] = d;
    for (size_t i = j + 1; i < n; ++i) {
      double s = A[i * n + j];
      for (size_t k = 0; k < j; ++k) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / d;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= A[i * n + k] * b[k];
    b[i] = s / A[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= A[k * n + i] * b[k];
    b[i] = s / A[i * n + i];
  }
  return b;
}

// Pair totals: n[i][j] battles, s[i][j] points of i against j (ties half).
struct PairTable {
  size_t p = 0;
  std::vector<double> n, s;
};

std::vector<double> fit_table(const PairTable& t) {
  const size_t p = t.p;
  // Coefficients x in units of ln(10) / 400 per rating point: P(i beats j) =
  // sigmoid(ln10 (x_i - x_j)), the LMSYS design matrix's +-log(10). Newton's method on
  // the concave log-likelihood; the Hessian is singular along the all-ones direction
  // (only differences matter), so (H + 11^T) is solved instead: the gradient has no
  // component along it, the steps neither, and the mean stays at its start, 0.
  const double c = std::log(10.0);
  std::vector<double> x(p, 0.0);
  for (int it = 0; it < 200; ++it) {
    std::vector<double> g(p, 0.0), H(p * p, 1.0);
    for (size_t i = 0; i < p; ++i)
      for (size_t j = 0; j < p; ++j) {
        const double n = t.n[i * p + j];
        if (i == j || n == 0) continue;
        const double q = 1.0 / (1.0 + std::exp(-c * (x[i] - x[j])));
        g[i] += c * (t.s[i * p + j] - n * q);
        const double h = c * c * n * q * (1 - q);
        H[i * p + i] += h;
        H[i * p + j] -= h;
      }
    const std::vector<double> d = solve_spd(H, g, p);
    double step = 0;
    for (size_t i = 0; i < p; ++i) {
      x[i] += d[i];
      step = std::max(step, std::abs(d[i]));
    }
    if (step < 1e-12) return x;
    for (double v : x)
      if (!std::isfinite(v) || std::abs(v) > 50)  // 20000 rating points apart: diverging
        throw Error("arena: the ratings are not finite (a model won or lost every battle, or groups of models never met)");
  }
  throw Error("arena: the rating fit did not converge");
}

// Models that never met (directly or through others) have no relative rating.
void check_connected(const PairTable& t) {
  std::vector<int> seen(t.p, 0);
  std::vector<size_t> stack{0};
  seen[0] = 1;
  while (!stack.empty()) {
    const size_t i = stack.back();
    stack.pop_back();
    for (size_t j = 0; j < t.p; ++j)
      if (!seen[j] && t.n[i * t.p + j] > 0) seen[j] = 1, stack.push_back(j);
  }
  for (size_t j = 0; j < t.p; ++j)
    if (!seen[j]) throw Error("arena: the battles form separate groups of models that never met; their ratings cannot be compared");
}

PairTable table_of(size_t p, const std::vector<std::pair<size_t, size_t>>& pairs, const std::vector<double>& score_a,
                   const std::vector<size_t>* pick = nullptr) {
  PairTable t;
  t.p = p;
  t.n.assign(p * p, 0.0);
  t.s.assign(p * p, 0.0);
  const size_t m = pick ? pick->size() : pairs.size();
  for (size_t k = 0; k < m; ++k) {
    const size_t b = pick ? (*pick)[k] : k;
    const auto [i, j] = pairs[b];
    t.n[i * p + j] += 1;
    t.n[j * p + i] += 1;
    t.s[i * p + j] += score_a[b];
    t.s[j * p + i] += 1 - score_a[b];
  }
  return t;
}

std::vector<double> to_ratings(const std::vector<double>& x) {
  std::vector<double> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = kInit + kScale * x[i];
  return r;
}

double percentile(std::vector<double> v, double q) {  // numpy's default (linear)
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace

std::vector<double> fit_bradley_terry(size_t n_models, const std::vector<std::pair<size_t, size_t>>& pairs,
                                      const std::vector<double>& score_a) {
  const PairTable t = table_of(n_models, pairs, score_a);
  check_connected(t);
  return to_ratings(fit_table(t));
}

ArenaResult arena_ratings(const std::vector<Battle>& battles, int bootstrap, uint64_t seed) {
  std::map<std::string, size_t> index;
  for (const Battle& b : battles) index.emplace(b.model_a, 0), index.emplace(b.model_b, 0);
  std::vector<std::string> names;
  for (auto& [name, i] : index) i = names.size(), names.push_back(name);
  std::vector<std::pair<size_t, size_t>> pairs;
  std::vector<double> score;
  for (const Battle& b : battles) pairs.push_back({index[b.model_a], index[b.model_b]}), score.push_back(b.score_a);
  const size_t p = names.size();
  const std::vector<double> rating = fit_bradley_terry(p, pairs, score);

  ArenaResult r;
  std::vector<std::vector<double>> samples(p);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick_one(0, battles.size() - 1);
  std::vector<size_t> pick(battles.size());
  for (int b = 0; b < bootstrap; ++b) {
    for (size_t& k : pick) k = pick_one(rng);
    const PairTable t = table_of(p, pairs, score, &pick);
    try {
      check_connected(t);
      const std::vector<double> x = to_ratings(fit_table(t));
      for (size_t i = 0; i < p; ++i) samples[i].push_back(x[i]);
    } catch (const Error&) {
      ++r.bootstrap_failed;  // a resample without a finite fit says nothing about the interval
    }
  }
  r.bootstrap = bootstrap;
  const PairTable all = table_of(p, pairs, score);
  std::vector<size_t> order(p);
  for (size_t i = 0; i < p; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rating[a] > rating[b]; });
  for (size_t i : order) {
    ArenaRating a;
    a.model = names[i];
    a.rating = rating[i];
    a.lower = samples[i].empty() ? rating[i] : percentile(samples[i], 0.025);
    a.upper = samples[i].empty() ? rating[i] : percentile(samples[i], 0.975);
    for (size_t j = 0; j < p; ++j) a.battles += static_cast<int64_t>(all.n[i * p + j]);
    r.ratings.push_back(a);
    r.models.push_back(names[i]);
  }
  for (size_t i : order) {
    std::vector<double> row;
    std::vector<int64_t> cnt;
    for (size_t j : order) {
      const double n = all.n[i * p + j];
      row.push_back(i == j || n == 0 ? -1.0 : all.s[i * p + j] / n);
      cnt.push_back(static_cast<int64_t>(n));
    }
    r.win_rate.push_back(row);
    r.counts.push_back(cnt);
  }
  return r;
}

}  // namespace teddy
