#include "teddy/eval/arena_battle.h"

#include "teddy/core/error.h"
#include "teddy/eval/generate_until.h"
#include "teddy/eval/jsonl.h"
#include "teddy/eval/loglikelihood.h"

namespace teddy {

std::vector<ArenaPrompt> read_arena_prompts(const std::string& path) {
  std::vector<ArenaPrompt> out;
  for (const JsonlRow& r : read_jsonl(path)) {
    ArenaPrompt p;
    p.prompt = require_string(r, path, r.value.contains("prompt") ? "prompt" : "question");
    p.reference = require_string(r, path, r.value.contains("reference") ? "reference" : "answer");
    if (p.reference.empty()) row_error(path, r.line, "the reference answer is empty");
    p.file = path;
    p.line = r.line;
    out.push_back(std::move(p));
  }
  if (out.empty()) throw FormatError(path + ": no prompts");
  return out;
}

namespace {

std::string first_line_trimmed(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  std::string t = s.substr(b, s.find('\n', b) == std::string::npos ? std::string::npos : s.find('\n', b) - b);
  const size_t e = t.find_last_not_of(ws);
  return e == std::string::npos ? "" : t.substr(0, e + 1);
}

}  // namespace

std::vector<BattleRecord> run_battles(const std::vector<ArenaContestant>& models, const std::vector<ArenaPrompt>& prompts,
                                      const std::string& judge, int max_new_tokens,
                                      const std::function<void(size_t, size_t)>& progress) {
  if (judge != "loglik" && judge != "exact") throw ConfigError("--judge: loglik or exact (got " + judge + ")");
  if (models.size() < 2) throw ConfigError("arena battle: give at least two models");
  // Each model's score on each prompt: scored once, used in every pair.
  std::vector<std::vector<double>> score(models.size(), std::vector<double>(prompts.size()));
  std::vector<std::vector<std::string>> answer(models.size(), std::vector<std::string>(prompts.size()));
  size_t done = 0;
  for (size_t m = 0; m < models.size(); ++m) {
    if (judge == "loglik") {
      std::vector<LoglikRequest> reqs;
      // The reference follows the prompt after one space, as a continuation is scored.
      for (const ArenaPrompt& p : prompts) {
        auto [c, x] = encode_pair(*models[m].tok, p.prompt, " " + p.reference);
        reqs.push_back({std::move(c), std::move(x)});
      }
      const std::vector<LoglikResult> r = score_loglikelihood(*models[m].model, reqs);
      for (size_t i = 0; i < prompts.size(); ++i)
        score[m][i] = r[i].logprob / static_cast<double>(prompts[i].reference.size() + 1);
      done += prompts.size();
      if (progress) progress(done, models.size() * prompts.size());
    } else {
      SamplingOptions greedy;
      greedy.temperature = 0;
      for (size_t i = 0; i < prompts.size(); ++i) {
        answer[m][i] = generate_until(*models[m].model, *models[m].tok, prompts[i].prompt, {"\n"}, max_new_tokens, greedy).text;
        score[m][i] = first_line_trimmed(answer[m][i]) == first_line_trimmed(prompts[i].reference) ? 1.0 : 0.0;
        if (progress) progress(++done, models.size() * prompts.size());
      }
    }
  }
  std::vector<BattleRecord> out;
  for (size_t i = 0; i < prompts.size(); ++i)
    for (size_t a = 0; a < models.size(); ++a)
      for (size_t b = a + 1; b < models.size(); ++b) {
        BattleRecord r;
        r.prompt = i;
        r.battle.model_a = models[a].name;
        r.battle.model_b = models[b].name;
        r.score_a = score[a][i];
        r.score_b = score[b][i];
        r.battle.score_a = r.score_a > r.score_b ? 1.0 : r.score_a < r.score_b ? 0.0 : 0.5;
        r.answer_a = answer[a][i];
        r.answer_b = answer[b][i];
        out.push_back(std::move(r));
      }
  return out;
}

}  // namespace teddy
