// MMLU and ARC-Challenge: multiple choice by the log-likelihood of each choice.
#include <map>

#include "teddy/core/error.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/fewshot.h"
#include "teddy/eval/metrics.h"
#include "teddy/eval/mmlu_categories.h"
#include "teddy/eval/prompts.h"
#include "teddy/eval/tasks.h"

namespace teddy {

const std::vector<std::string>& eval_task_names() { return benchmark_task_names(); }

namespace {

struct McItem {
  const McDoc* doc = nullptr;
  std::string prompt;
  std::vector<std::string> conts;  // scored continuations (" A", " <text>")
};

// Scores every item's continuations in one batched pass, then fills r.samples and
// returns per-item (acc, acc_norm).
std::vector<std::pair<double, double>> score_items(Model& m, const Tokenizer& tok, const std::vector<McItem>& items,
                                                   const EvalOptions& o, EvalResult& r) {
  std::vector<LoglikRequest> reqs;
  for (const McItem& it : items)
    for (const std::string& c : it.conts) {
      auto [ctx, cont] = encode_pair(tok, it.prompt, c);
      reqs.push_back({std::move(ctx), std::move(cont)});
    }
  const std::vector<LoglikResult> res = score_loglikelihood(m, reqs, o.loglik, o.progress);
  std::vector<std::pair<double, double>> out;
  size_t k = 0;
  for (const McItem& it : items) {
    std::vector<double> ll;
    std::vector<bool> greedy;
    for (size_t j = 0; j < it.conts.size(); ++j, ++k) {
      ll.push_back(res[k].logprob);
      greedy.push_back(res[k].greedy);
    }
    // acc_norm divides by the choice text's length: lm-eval's doc_to_choice, which
    // has no leading space (MMLU's "A".."D": all 1, so acc_norm = acc there).
    std::vector<std::string> texts;
    for (const std::string& c : it.conts) texts.push_back(c.substr(1));
    const McPrediction p = mc_predict(ll, texts);
    const double acc = p.pred == static_cast<size_t>(it.doc->gold), acc_norm = p.pred_norm == static_cast<size_t>(it.doc->gold);
    out.push_back({acc, acc_norm});
    nlohmann::ordered_json s;
    s["doc_id"] = it.doc->id;
    if (!it.doc->subject.empty()) s["subject"] = it.doc->subject;
    s["prompt"] = it.prompt;
    s["choices"] = it.conts;
    s["loglikelihoods"] = ll;
    s["greedy"] = greedy;
    s["gold"] = it.doc->gold;
    s["prediction"] = p.pred;
    s["prediction_norm"] = p.pred_norm;
    s["correct"] = acc == 1.0;
    s["correct_norm"] = acc_norm == 1.0;
    r.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace

EvalResult eval_mmlu(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o) {
  const int K = o.shots < 0 ? 5 : o.shots;
  const std::vector<McDoc> docs = read_mmlu(data);
  std::map<std::string, std::vector<const McDoc*>> by_subject;
  for (const McDoc& d : docs) by_subject[d.subject].push_back(&d);
  // Few-shot rows: the dev split (--fewshot or dev/ beside the data), else the first K
  // of each subject's own rows, which are then not scored.
  std::string dev = o.fewshot_path.empty() ? mmlu_dev_path(data) : o.fewshot_path;
  std::vector<McDoc> dev_docs;
  if (K > 0 && !dev.empty()) dev_docs = read_mmlu(dev, "dev");
  std::map<std::string, std::vector<McDoc>> shots;
  for (const McDoc& d : dev_docs)
    if (shots[d.subject].size() < static_cast<size_t>(K)) shots[d.subject].push_back(d);
  EvalResult r;
  r.task = "mmlu";
  std::vector<McItem> items;
  for (auto& [subject, rows] : by_subject) {
    size_t first = 0;
    std::vector<McDoc> own;
    if (K > 0 && dev.empty()) {
      for (; first < rows.size() && own.size() < static_cast<size_t>(K); ++first) own.push_back(*rows[first]);
      shots[subject] = own;
    } else if (K > 0 && shots[subject].size() < static_cast<size_t>(K)) {
      throw FormatError(dev + ": " + std::to_string(shots[subject].size()) + " dev rows for subject \"" + subject +
                        "\", " + std::to_string(K) + " shots asked (give --shots or --fewshot)");
    }
    size_t taken = 0;
    for (size_t i = first; i < rows.size() && (o.limit == 0 || taken < o.limit); ++i, ++taken)
      items.push_back({rows[i], mmlu_prompt(*rows[i], shots[subject]), mmlu_continuations(*rows[i])});
  }
  if (items.empty()) throw FormatError(data + ": no questions left to score after the few-shot rows");
  const auto acc = score_items(m, tok, items, o, r);
  // Per subject, then micro (every question weighs the same: lm-eval's group "mmlu",
  // weighted by size) and macro (every subject weighs the same) averages.
  std::map<std::string, std::pair<double, size_t>> per;
  std::vector<double> all;
  for (size_t i = 0; i < items.size(); ++i) {
    auto& p = per[items[i].doc->subject];
    p.first += acc[i].first;
    ++p.second;
    all.push_back(acc[i].first);
  }
  double macro = 0;
  r.groups = nlohmann::ordered_json::object();
  for (const auto& [subject, p] : per) {
    r.groups[subject] = {{"n", p.second}, {"acc", p.first / static_cast<double>(p.second)}};
    macro += p.first / static_cast<double>(p.second);
  }
  double micro = 0;
  for (double a : all) micro += a;
  r.n = all.size();
  r.metrics["acc"] = micro / static_cast<double>(all.size());
  r.metrics["acc_stderr"] = mean_stderr(all);
  r.metrics["acc_macro"] = macro / static_cast<double>(per.size());
  // lm-eval's category groups: acc weighted by size (micro) as lm-eval reports a group,
  // and the mean over the category's subjects (macro). Subjects outside lm-eval's 57
  // belong to none.
  struct Cat {
    double correct = 0, subject_acc_sum = 0;
    size_t n = 0, subjects = 0;
  };
  std::map<std::string, Cat> cats;
  std::vector<std::string> uncategorised;
  for (const auto& [subject, p] : per) {
    const std::string c = mmlu_category(subject);
    if (c.empty()) {
      uncategorised.push_back(subject);
      continue;
    }
    Cat& k = cats[c];
    k.correct += p.first;
    k.n += p.second;
    k.subject_acc_sum += p.first / static_cast<double>(p.second);
    ++k.subjects;
  }
  r.categories = nlohmann::ordered_json::object();
  for (const std::string& c : mmlu_categories()) {
    const auto it = cats.find(c);
    if (it == cats.end()) continue;
    const Cat& k = it->second;
    const double acc = k.correct / static_cast<double>(k.n);
    r.categories[c] = {{"n", k.n}, {"subjects", k.subjects}, {"acc", acc},
                       {"acc_macro", k.subject_acc_sum / static_cast<double>(k.subjects)}};
    r.metrics["acc_" + c] = acc;
  }
  if (!uncategorised.empty()) r.info["uncategorised_subjects"] = uncategorised;
  r.info["shots"] = K;
  r.info["fewshot_source"] = K == 0 ? "none" : dev.empty() ? "the first rows of each subject (not scored)" : dev;
  r.info["subjects"] = per.size();
  r.info["chance"] = 0.25;
  return r;
}

EvalResult eval_arc(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o) {
  const int K = o.shots < 0 ? 0 : o.shots;
  const std::vector<McDoc> docs = read_arc(data);
  size_t first = 0;
  const std::vector<McDoc> shots = select_shots(docs, K, o.fewshot_path, read_arc, first);
  EvalResult r;
  r.task = "arc_challenge";
  std::vector<McItem> items;
  double chance = 0;
  for (size_t i = first; i < docs.size() && (o.limit == 0 || items.size() < o.limit); ++i) {
    items.push_back({&docs[i], arc_prompt(docs[i], shots), arc_continuations(docs[i])});
    chance += 1.0 / static_cast<double>(docs[i].choices.size());
  }
  if (items.empty()) throw FormatError(data + ": no questions left to score after the few-shot rows");
  const auto acc = score_items(m, tok, items, o, r);
  std::vector<double> a, an;
  for (const auto& [x, y] : acc) a.push_back(x), an.push_back(y);
  double sa = 0, sn = 0;
  for (size_t i = 0; i < a.size(); ++i) sa += a[i], sn += an[i];
  r.n = items.size();
  r.metrics["acc"] = sa / static_cast<double>(r.n);
  r.metrics["acc_stderr"] = mean_stderr(a);
  r.metrics["acc_norm"] = sn / static_cast<double>(r.n);
  r.metrics["acc_norm_stderr"] = mean_stderr(an);
  r.info["shots"] = K;
  r.info["fewshot_source"] = K == 0 ? "none" : o.fewshot_path.empty() ? "the first rows of the data (not scored)" : o.fewshot_path;
  r.info["chance"] = chance / static_cast<double>(r.n);
  return r;
}

}  // namespace teddy
