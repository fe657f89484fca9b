// GSM8K: k-shot generation, the answer after "####" or else the last number, exact
// match as lm-eval normalises it.
#include <map>

#include "teddy/core/error.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/fewshot.h"
#include "teddy/eval/generate_until.h"
#include "teddy/eval/jsonl.h"
#include "teddy/eval/metrics.h"
#include "teddy/eval/prompts.h"
#include "teddy/eval/tasks.h"

namespace teddy {

namespace {

// Scores one completion into r; returns whether it matched.
// cot: gsm8k_cot's strict filter ("The answer is N.") instead of "#### N".
void score_completion(const Gsm8kDoc& d, size_t idx, const std::string& prompt, const std::string& completion,
                      EvalResult& r, std::vector<double>& em, std::vector<double>& strict, std::vector<double>& flex,
                      bool cot) {
  const std::string ex = cot ? gsm8k_cot_extract(completion) : gsm8k_extract(completion);
  const std::string s = cot ? gsm8k_cot_strict(completion) : gsm8k_strict(completion), f = gsm8k_flexible(completion);
  const bool ok = gsm8k_match(ex, d.answer);
  em.push_back(ok);
  strict.push_back(gsm8k_match(s, d.answer));
  flex.push_back(gsm8k_match(f, d.answer));
  nlohmann::ordered_json j;
  j["doc_id"] = idx;
  j["question"] = d.question;
  if (!prompt.empty()) j["prompt"] = prompt;
  j["completion"] = completion;
  j["prediction"] = ex;
  j["prediction_strict"] = s;
  j["prediction_flexible"] = f;
  j["reference"] = gsm8k_normalize(d.answer);
  j["correct"] = ok;
  r.samples.push_back(std::move(j));
}

void finish(EvalResult& r, const std::vector<double>& em, const std::vector<double>& strict, const std::vector<double>& flex) {
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  r.n = em.size();
  r.metrics["exact_match"] = mean(em);
  r.metrics["exact_match_stderr"] = mean_stderr(em);
  r.metrics["exact_match_strict"] = mean(strict);
  r.metrics["exact_match_flexible"] = mean(flex);
  r.info["chance"] = 0.0;
}

}  // namespace

EvalResult eval_gsm8k(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o) {
  const int K = o.shots < 0 ? 8 : o.shots;
  const std::vector<Gsm8kDoc> docs = read_gsm8k(data);
  size_t first = 0;
  std::vector<Gsm8kDoc> shots;
  if (o.cot) {
    // gsm8k_cot: lm-eval's fixed exemplars, never rows of the data.
    if (!o.fewshot_path.empty()) throw ConfigError("gsm8k_cot: its exemplars are fixed (Wei et al.); give no --fewshot");
    if (K > static_cast<int>(gsm8k_cot_exemplars().size()))
      throw ConfigError("gsm8k_cot: " + std::to_string(K) + " shots asked, it has " +
                        std::to_string(gsm8k_cot_exemplars().size()) + " exemplars");
  } else {
    shots = select_shots(docs, K, o.fewshot_path, read_gsm8k, first);
  }
  const size_t end = o.limit ? std::min(docs.size(), first + o.limit) : docs.size();
  if (first >= end) throw FormatError(data + ": no problems left to score after the few-shot rows");
  SamplingOptions so;
  so.temperature = o.temperature;
  so.top_p = o.top_p;
  so.seed = o.seed;
  const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : 256;
  EvalResult r;
  r.task = o.cot ? "gsm8k_cot" : "gsm8k";
  std::vector<double> em, strict, flex;
  int dropped = 0;
  for (size_t i = first; i < end; ++i) {
    const std::string prompt = o.cot ? gsm8k_cot_prompt(docs[i], K) : gsm8k_prompt(docs[i], shots);
    const GenerateUntilResult g =
        generate_until(m, tok, prompt, o.cot ? gsm8k_cot_stop_sequences() : gsm8k_stop_sequences(), max_new, so);
    dropped += g.dropped_tokens > 0;
    score_completion(docs[i], i, prompt, g.text, r, em, strict, flex, o.cot);
    if (o.progress) o.progress(i + 1 - first, end - first);
  }
  finish(r, em, strict, flex);
  r.info["shots"] = K;
  r.info["fewshot_source"] = K == 0                    ? "none"
                             : o.cot                     ? "lm-eval gsm8k-cot.yaml's fixed exemplars (Wei et al.)"
                             : o.fewshot_path.empty()    ? "the first rows of the data (not scored)"
                                                         : o.fewshot_path;
  r.info["max_new_tokens"] = max_new;
  r.info["prompts_truncated"] = dropped;
  return r;
}

EvalResult score_gsm8k_predictions(const std::string& data, const std::string& predictions, const EvalOptions& o) {
  const std::vector<Gsm8kDoc> docs = read_gsm8k(data);
  std::map<std::string, size_t> by_question;
  for (size_t i = 0; i < docs.size(); ++i) by_question.emplace(docs[i].question, i);
  EvalResult r;
  r.task = o.cot ? "gsm8k_cot" : "gsm8k";
  std::vector<double> em, strict, flex;
  for (const JsonlRow& row : read_jsonl(predictions)) {
    if (o.limit && em.size() >= o.limit) break;
    const std::string completion = require_string(row, predictions, "completion");
    size_t idx = 0;
    if (auto q = row.value.find("question"); q != row.value.end() && q->is_string()) {
      auto it = by_question.find(q->get<std::string>());
      if (it == by_question.end()) row_error(predictions, row.line, "its \"question\" is not a problem of " + data);
      idx = it->second;
    } else if (auto x = row.value.find("idx"); x != row.value.end() && x->is_number_integer()) {
      const int64_t v = x->get<int64_t>();
      if (v < 0 || static_cast<size_t>(v) >= docs.size())
        row_error(predictions, row.line, "\"idx\" " + std::to_string(v) + " is outside " + data + "'s " + std::to_string(docs.size()) + " rows");
      idx = static_cast<size_t>(v);
    } else {
      row_error(predictions, row.line, "needs a string field \"question\" or an integer field \"idx\" (0-based row of the data)");
    }
    score_completion(docs[idx], idx, "", completion, r, em, strict, flex, o.cot);
  }
  if (em.empty()) throw FormatError(predictions + ": no predictions");
  finish(r, em, strict, flex);
  r.info["predictions"] = predictions;
  return r;
}

}  // namespace teddy
