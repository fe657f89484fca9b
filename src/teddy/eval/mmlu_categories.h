#pragma once
// MMLU's subject -> category map as lm-evaluation-harness groups its 57 subjects
// (lm_eval/tasks/mmlu/_generate_configs.py SUBJECTS): stem, humanities,
// social_sciences, other. lm-eval reports each category group's acc weighted by size
// (every question weighs the same: micro); teddy adds the unweighted mean over the
// category's subjects (macro).
#include <string>
#include <vector>

namespace teddy {

// The category of an MMLU subject ("abstract_algebra" -> "stem"); "" for a subject
// outside lm-eval's 57.
std::string mmlu_category(const std::string& subject);

// The categories in lm-eval's group order (mmlu: stem, other, social_sciences, humanities).
const std::vector<std::string>& mmlu_categories();

}  // namespace teddy
