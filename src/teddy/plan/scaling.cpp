#include "teddy/plan/scaling.h"

#include <cmath>
#include <string>

#include "teddy/core/error.h"
#include "teddy/plan/units.h"

namespace teddy::plan {
namespace {

constexpr double kMaxParams = 1e16;
constexpr double kMaxTokens = 1e18;
constexpr double kMaxFlops = 1e34;

}  // namespace

ChinchillaApproach chinchilla_approach_from_name(std::string_view name) {
  if (name == "table" || name == "1") return ChinchillaApproach::table;
  if (name == "parametric" || name == "3") return ChinchillaApproach::parametric;
  throw ConfigError("approach: unknown '" + std::string(name) + "' (known: table, parametric)");
}

std::string_view chinchilla_approach_name(ChinchillaApproach a) {
  return a == ChinchillaApproach::table ? "table" : "parametric";
}

double chinchilla_loss(double params, double tokens, const ChinchillaLaw& law) {
  check_range("params", params, kMaxParams);
  check_range("tokens", tokens, kMaxTokens);
  return law.E + law.A / std::pow(params, law.alpha) + law.B / std::pow(tokens, law.beta);
}

double kaplan_loss_params(double non_embedding_params) {
  check_range("params", non_embedding_params, kMaxParams);
  return std::pow(non_embedding_params / 8.8e13, -0.076);
}

double kaplan_loss_tokens(double tokens) {
  check_range("tokens", tokens, kMaxTokens);
  return std::pow(tokens / 5.4e13, -0.095);
}

namespace {

// Approach 3's G and exponents.
struct Parametric {
  double G, a, b;
  explicit Parametric(const ChinchillaLaw& l)
      : G(std::pow(l.alpha * l.A / (l.beta * l.B), 1.0 / (l.alpha + l.beta))),
        a(l.beta / (l.alpha + l.beta)),
        b(l.alpha / (l.alpha + l.beta)) {}
};

ComputeOptimal finish(double params, double flops, const ChinchillaLaw& law) {
  ComputeOptimal r;
  r.params = params;
  r.flops = flops;
  r.tokens = flops / (6 * params);
  r.loss = law.E + law.A / std::pow(r.params, law.alpha) + law.B / std::pow(r.tokens, law.beta);
  return r;
}

}  // namespace

ComputeOptimal chinchilla_for_flops(double flops, ChinchillaApproach approach, const ChinchillaLaw& law) {
  check_range("flops", flops, kMaxFlops);
  if (approach == ChinchillaApproach::table) return finish(law.table_k * std::pow(flops, law.table_a), flops, law);
  const Parametric p(law);
  return finish(p.G * std::pow(flops / 6, p.a), flops, law);
}

ComputeOptimal chinchilla_for_params(double params, ChinchillaApproach approach, const ChinchillaLaw& law) {
  check_range("params", params, kMaxParams);
  double flops = 0;
  if (approach == ChinchillaApproach::table) {
    flops = std::pow(params / law.table_k, 1 / law.table_a);  // invert N = k C^a
  } else {
    const Parametric p(law);
    flops = 6 * std::pow(params / p.G, 1 / p.a);  // invert N = G (C/6)^a
  }
  return finish(params, flops, law);
}

const std::vector<ChinchillaPaperRow>& chinchilla_paper_table() {
  static const std::vector<ChinchillaPaperRow> rows = {
      {400e6, 1.92e19, 8.0e9},     {1e9, 1.21e20, 20.2e9},     {10e9, 1.23e22, 205.1e9},
      {67e9, 5.76e23, 1.5e12},     {175e9, 3.85e24, 3.7e12},   {280e9, 9.90e24, 5.9e12},
      {520e9, 3.43e25, 11.0e12},   {1e12, 1.27e26, 21.2e12},   {10e12, 1.30e28, 216.2e12},
  };
  return rows;
}

std::vector<ChinchillaTableRow> chinchilla_table(const ChinchillaLaw& law) {
  std::vector<ChinchillaTableRow> rows;
  for (const ChinchillaPaperRow& p : chinchilla_paper_table()) {
    ChinchillaTableRow r;
    r.paper = p;
    r.ours = chinchilla_for_params(p.params, ChinchillaApproach::table, law);
    r.parametric = chinchilla_for_flops(r.ours.flops, ChinchillaApproach::parametric, law);
    rows.push_back(r);
  }
  return rows;
}

}  // namespace teddy::plan
