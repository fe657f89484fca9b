#pragma once
// Battles between models on a prompt set, judged automatically, so the arena loop
// (battles -> ratings) runs locally without human votes. Every pair of models meets
// on every prompt. Judges:
//   loglik  the model that gives the reference answer the higher log-likelihood per
//           byte wins (per byte, not per token: the models may have different
//           tokenizers); equal scores are a tie;
//   exact   each model answers greedily; the one whose answer (trimmed, first line)
//           equals the reference wins; both right or both wrong is a tie.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "teddy/eval/arena.h"
#include "teddy/model/model.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

struct ArenaContestant {
  std::string name;
  Model* model = nullptr;
  const Tokenizer* tok = nullptr;
};

struct ArenaPrompt {
  std::string prompt, reference;
  std::string file;
  size_t line = 0;
};

// JSONL rows {"prompt", "reference"} (also "question"/"answer"). Errors name file and line.
std::vector<ArenaPrompt> read_arena_prompts(const std::string& path);

struct BattleRecord {
  Battle battle;
  size_t prompt = 0;
  double score_a = 0, score_b = 0;  // the judge's scores (loglik per byte, or 1/0 for exact)
  std::string answer_a, answer_b;   // exact: the answers
};

// judge: "loglik" or "exact" (ConfigError otherwise). max_new_tokens bounds exact's answers.
std::vector<BattleRecord> run_battles(const std::vector<ArenaContestant>& models, const std::vector<ArenaPrompt>& prompts,
                                      const std::string& judge, int max_new_tokens = 64,
                                      const std::function<void(size_t, size_t)>& progress = {});

}  // namespace teddy
