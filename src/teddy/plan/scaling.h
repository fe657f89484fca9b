#pragma once
// Scaling laws: how big a model and how many tokens for a compute budget.
//
// Chinchilla (Hoffmann et al. 2022), C = 6 N D:
//  - "table": the paper's Approach 1 (Table 3, the compute-optimal table). Its
//    exponents are printed rounded (a = b = 0.50); Table 3 itself follows
//    N_opt = 0.09935 * C^0.4981 (our least-squares fit to its rows, 67B excluded;
//    tokens per parameter grow slowly, 20.0 at 400M to 21.6 at 10T). This is the
//    mode that reproduces Table 3.
//  - "parametric": Approach 3, minimising the fitted loss
//    L(N, D) = E + A / N^alpha + B / D^beta under C = 6 N D:
//    N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b, a = beta/(alpha+beta), b = alpha/(alpha+beta),
//    G = (alpha A / (beta B))^(1/(alpha+beta)). It favours smaller models (67B-scale
//    compute gives ~35B parameters).
// Kaplan et al. 2020: L(N) = (N / 8.8e13)^-0.076 (N non-embedding parameters),
// L(D) = (D / 5.4e13)^-0.095 (D tokens), in nats per token.
#include <string_view>
#include <vector>

namespace teddy::plan {

enum class ChinchillaApproach { table, parametric };
ChinchillaApproach chinchilla_approach_from_name(std::string_view name);  // table | parametric
std::string_view chinchilla_approach_name(ChinchillaApproach a);

struct ChinchillaLaw {
  double E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28;  // Approach 3 fit
  double table_k = 0.09935, table_a = 0.4981;                           // Table 3 (Approach 1)
};

// Fitted loss L(N, D); N, D must be positive and finite.
double chinchilla_loss(double params, double tokens, const ChinchillaLaw& law = {});
double kaplan_loss_params(double non_embedding_params);
double kaplan_loss_tokens(double tokens);

struct ComputeOptimal {
  double params = 0, tokens = 0, flops = 0;  // flops = 6 * params * tokens
  double loss = 0;                           // chinchilla_loss(params, tokens)
};
// The compute-optimal (N, D) for a FLOP budget, and the budget and D for a model size.
ComputeOptimal chinchilla_for_flops(double flops, ChinchillaApproach approach = ChinchillaApproach::table,
                                    const ChinchillaLaw& law = {});
ComputeOptimal chinchilla_for_params(double params, ChinchillaApproach approach = ChinchillaApproach::table,
                                     const ChinchillaLaw& law = {});

// Chinchilla's Table 3 as printed (params, FLOPs, tokens).
struct ChinchillaPaperRow {
  double params, flops, tokens;
};
const std::vector<ChinchillaPaperRow>& chinchilla_paper_table();

// Our compute-optimal row for each of the paper's model sizes, next to the paper's.
struct ChinchillaTableRow {
  ComputeOptimal ours;       // table approach for paper.params
  ComputeOptimal parametric; // Approach 3 for the same FLOP budget
  ChinchillaPaperRow paper;
};
std::vector<ChinchillaTableRow> chinchilla_table(const ChinchillaLaw& law = {});

}  // namespace teddy::plan
