#pragma once
// Views of a plan: a readable table (units K/M/B/T, GB, hours) and JSON for
// scripts. Both are built from the same numbers; nothing here prints.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "teddy/plan/plan.h"
#include "teddy/plan/scaling.h"

namespace teddy::plan {

// Which parts of a plan to show (bit flags).
enum Section : unsigned {
  kSectionModel = 1u << 0,
  kSectionParams = 1u << 1,
  kSectionFlops = 1u << 2,
  kSectionTraining = 1u << 3,
  kSectionMemory = 1u << 4,
  kSectionScaling = 1u << 5,
  kSectionAll = 0x3fu,
};

nlohmann::json to_json(const Plan& plan, unsigned sections = kSectionAll);
std::string render_text(const Plan& plan, unsigned sections = kSectionAll);

// `teddy plan chinchilla` with no budget: the paper's model sizes.
nlohmann::json chinchilla_table_json(const std::vector<ChinchillaTableRow>& rows);
std::string render_chinchilla_table(const std::vector<ChinchillaTableRow>& rows);

// `teddy plan chinchilla --flops C` or `--params N`: both approaches and the losses.
struct ChinchillaAnswer {
  ComputeOptimal table, parametric;
  double kaplan_loss_params = 0, kaplan_loss_tokens = 0;  // at the table approach's (N, D)
};
ChinchillaAnswer chinchilla_answer(double flops, double params);  // exactly one of them > 0
nlohmann::json to_json(const ChinchillaAnswer& a);
std::string render_text(const ChinchillaAnswer& a);

}  // namespace teddy::plan
