// The built `teddy eval` binary on fixture files in the published formats: one JSON
// object with lm-eval's metric names, per-sample logs consistent with the metrics,
// --predictions scoring (canonical HumanEval solutions pass, wrong ones fail), and
// errors that name the file, line or field.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <algorithm>
#include <map>
#include <random>
#include <nlohmann/json.hpp>

#include "cli/run_teddy.h"
#include "eval/eval_fixtures.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/metrics.h"
#include "teddy/eval/mmlu_categories.h"
#include "teddy/io/hf_peft.h"
#include "teddy/model/lora.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::scratch_dir;
using test::write_text;

using Result = teddy::test::CliResult;

Result run_teddy(const std::string& args, bool merge_stderr = false) {
  return teddy::test::run_teddy(args, merge_stderr ? teddy::test::Stderr::merge : teddy::test::Stderr::drop);
}

json run_json(const std::string& args) {
  const Result r = run_teddy(args + " --json");
  EXPECT_EQ(r.rc, 0) << run_teddy(args, true).out;
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << r.out;
    return json::object();
  }
}

std::vector<json> read_lines(const fs::path& p) {
  std::vector<json> v;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) v.push_back(json::parse(line));
  return v;
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(scratch_dir("cli"));
    run_ = new std::string(test::make_run(*dir_));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete run_;
  }
  static fs::path* dir_;
  static std::string* run_;
};
fs::path* EvalCli::dir_ = nullptr;
std::string* EvalCli::run_ = nullptr;

TEST_F(EvalCli, MmluPerSubjectMicroMacroAndSamples) {
  const fs::path data = test::make_mmlu(*dir_ / "mmlu");
  const fs::path log = *dir_ / "mmlu_samples.jsonl";
  const json j = run_json("eval mmlu --checkpoint " + *run_ + " --data " + data.string() + " --shots 1 --log-samples " + log.string());
  EXPECT_EQ(j["task"], "mmlu");
  EXPECT_EQ(j["n"], 4);
  ASSERT_TRUE(j["groups"].contains("abstract_algebra"));
  EXPECT_EQ(j["groups"]["abstract_algebra"]["n"], 3);
  EXPECT_EQ(j["groups"]["anatomy"]["n"], 1);
  const std::vector<json> s = read_lines(log);
  ASSERT_EQ(s.size(), 4u);
  // The metrics are the samples' arithmetic: micro = all questions, macro = subjects.
  double correct = 0, aa = 0, an = 0;
  for (const json& x : s) {
    const std::vector<double> ll = x["loglikelihoods"];
    EXPECT_EQ(x["prediction"].get<size_t>(), argmax_first(ll));
    EXPECT_EQ(x["correct"].get<bool>(), x["prediction"] == x["gold"]);
    EXPECT_EQ(x["choices"], json({" A", " B", " C", " D"}));
    correct += x["correct"].get<bool>();
    (x["subject"] == "anatomy" ? an : aa) += x["correct"].get<bool>();
  }
  EXPECT_DOUBLE_EQ(j["acc"].get<double>(), correct / 4);
  EXPECT_DOUBLE_EQ(j["acc_macro"].get<double>(), (aa / 3 + an / 1) / 2);
  // One shot from dev/, rendered before the question.
  EXPECT_EQ(s[0]["prompt"].get<std::string>().rfind("The following are multiple choice questions (with answers) about abstract "
                                                     "algebra.\n\nFind 1+1.\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\nIs Z",
                                                     0),
            0u);
  // dev/ holds 2 abstract_algebra rows: 5 shots (the default) is refused, naming it.
  const Result five = run_teddy("eval mmlu --checkpoint " + *run_ + " --data " + data.string(), true);
  EXPECT_EQ(five.rc, 1);
  EXPECT_NE(five.out.find("dev rows for subject \"abstract_algebra\", 5 shots asked"), std::string::npos) << five.out;
}

// lm-eval's category groups: each category's acc weighted by size (micro, as lm-eval
// reports a group) and the mean over its subjects (macro), from the per-sample log;
// a subject outside lm-eval's 57 belongs to none.
TEST_F(EvalCli, MmluCategoriesMicroAndMacro) {
  const fs::path root = *dir_ / "mmlu_cats";
  const std::map<std::string, int> rows{{"abstract_algebra", 3}, {"college_physics", 1}, {"philosophy", 2},
                                        {"sociology", 1}, {"marketing", 2}, {"my_own_subject", 1}};
  int k = 0;
  for (const auto& [subject, n] : rows) {
    std::string t;
    for (int i = 0; i < n; ++i, ++k)
      t += "Question " + std::to_string(k) + " about " + subject + "?,w" + std::to_string(k) + ",x,y,z," + "ABCD"[k % 4] + "\n";
    write_text(root / "test" / (subject + "_test.csv"), t);
  }
  const fs::path log = *dir_ / "mmlu_cats_samples.jsonl";
  const json j = run_json("eval mmlu --checkpoint " + *run_ + " --data " + root.string() + " --shots 0 --log-samples " + log.string());
  const std::map<std::string, std::string> cat{{"abstract_algebra", "stem"}, {"college_physics", "stem"},
                                               {"philosophy", "humanities"}, {"sociology", "social_sciences"},
                                               {"marketing", "other"}};
  std::map<std::string, std::pair<double, int>> per;  // subject -> (correct, n)
  for (const json& x : read_lines(log)) {
    auto& p = per[x["subject"].get<std::string>()];
    p.first += x["correct"].get<bool>();
    ++p.second;
  }
  ASSERT_TRUE(j["categories"].is_object()) << j;
  EXPECT_EQ(j["categories"].size(), 4u);
  for (const std::string c : {"stem", "humanities", "social_sciences", "other"}) {
    double correct = 0, macro = 0;
    int n = 0, subjects = 0;
    for (const auto& [subject, p] : per)
      if (cat.count(subject) && cat.at(subject) == c) correct += p.first, n += p.second, macro += p.first / p.second, ++subjects;
    const json& g = j["categories"][c];
    EXPECT_EQ(g["n"].get<int>(), n) << c;
    EXPECT_EQ(g["subjects"].get<int>(), subjects) << c;
    EXPECT_DOUBLE_EQ(g["acc"].get<double>(), correct / n) << c;
    EXPECT_DOUBLE_EQ(g["acc_macro"].get<double>(), macro / subjects) << c;
    EXPECT_DOUBLE_EQ(j["acc_" + c].get<double>(), correct / n) << c;
  }
  EXPECT_EQ(j["info"]["uncategorised_subjects"], json({"my_own_subject"}));
  EXPECT_EQ(j["categories"]["stem"]["subjects"], 2);
}

TEST(EvalMmlu, CategoryMapIsLmEvalsFiftySeven) {
  // lm_eval/tasks/mmlu/_generate_configs.py: 19 stem, 13 other, 12 social_sciences, 13 humanities.
  const char* subjects[] = {
      "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
      "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
      "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
      "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
      "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
      "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
      "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
      "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
      "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
      "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
      "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
      "world_religions"};
  std::map<std::string, int> count;
  for (const char* s : subjects) ++count[mmlu_category(s)];
  EXPECT_EQ(count, (std::map<std::string, int>{{"stem", 19}, {"other", 13}, {"social_sciences", 12}, {"humanities", 13}}));
  EXPECT_EQ(mmlu_category("econometrics"), "social_sciences");
  EXPECT_EQ(mmlu_category("formal_logic"), "humanities");
  EXPECT_EQ(mmlu_category("global_facts"), "other");
  EXPECT_EQ(mmlu_category("not_a_subject"), "");
}

TEST_F(EvalCli, ArcAccNormFromSamples) {
  const fs::path data = test::make_arc(*dir_ / "arc.jsonl");
  const fs::path log = *dir_ / "arc_samples.jsonl";
  const json j = run_json("eval arc_challenge --checkpoint " + *run_ + " --data " + data.string() + " --log-samples " + log.string());
  EXPECT_EQ(j["n"], 3);
  const std::vector<json> s = read_lines(log);
  ASSERT_EQ(s.size(), 3u);
  double acc = 0, norm = 0;
  for (const json& x : s) {
    const std::vector<double> ll = x["loglikelihoods"];
    std::vector<double> per_char;
    for (size_t i = 0; i < ll.size(); ++i) per_char.push_back(ll[i] / static_cast<double>(x["choices"][i].get<std::string>().size() - 1));
    EXPECT_EQ(x["prediction_norm"].get<size_t>(), argmax_first(per_char));
    acc += x["correct"].get<bool>();
    norm += x["correct_norm"].get<bool>();
  }
  EXPECT_DOUBLE_EQ(j["acc"].get<double>(), acc / 3);
  EXPECT_DOUBLE_EQ(j["acc_norm"].get<double>(), norm / 3);
  EXPECT_NEAR(j["info"]["chance"].get<double>(), (0.25 + 1.0 / 3 + 0.25) / 3, 1e-12);
}

TEST_F(EvalCli, HuggingFaceDirectoryScoresTheSame) {
  // The run exported to transformers' layout (f32: the same weights, the byte-level
  // tokenizer as tokenizer.json) and read back with --model hf:DIR.
  const fs::path hf = *dir_ / "hf";
  ASSERT_EQ(run_teddy("export hf --checkpoint " + *run_ + " --out " + hf.string()).rc, 0);
  const fs::path data = test::make_arc(*dir_ / "arc_hf.jsonl");
  const fs::path a = *dir_ / "ckpt.jsonl", b = *dir_ / "hf.jsonl";
  run_json("eval arc_challenge --checkpoint " + *run_ + " --data " + data.string() + " --log-samples " + a.string());
  run_json("eval arc_challenge --model hf:" + hf.string() + " --data " + data.string() + " --log-samples " + b.string());
  const std::vector<json> x = read_lines(a), y = read_lines(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i]["loglikelihoods"], y[i]["loglikelihoods"]);  // same floats, same kernels
}

TEST_F(EvalCli, Gsm8kPredictionsAndGeneration) {
  const fs::path data = test::make_gsm8k(*dir_ / "gsm8k.jsonl");
  const fs::path pred = *dir_ / "gsm8k_pred.jsonl";
  write_text(pred, R"({"idx": 0, "completion": "3 + 4 = 7\n#### 7\n\nQuestion: more #### 9"})" "\n"
                   R"({"question": "A book costs $1,200 and a pen $5. What do both cost?", "completion": "Both cost $1,205."})" "\n"
                   R"({"idx": 2, "completion": "#### 3"})" "\n");
  const json j = run_json("eval gsm8k --data " + data.string() + " --predictions " + pred.string());
  EXPECT_EQ(j["n"], 3);
  EXPECT_NEAR(j["exact_match"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(j["exact_match_strict"].get<double>(), 1.0 / 3, 1e-12);  // the second has no "####"
  // With the model: one shot (the first row, then not scored), one problem.
  const json g = run_json("eval gsm8k --checkpoint " + *run_ + " --data " + data.string() + " --shots 1 --limit 1 --max-tokens 8");
  EXPECT_EQ(g["n"], 1);
  EXPECT_TRUE(g.contains("exact_match"));
  // A prediction for no problem is refused with its line.
  write_text(pred, R"({"idx": 0, "completion": "#### 7"})" "\n" R"({"idx": 9, "completion": "#### 7"})" "\n");
  const Result bad = run_teddy("eval gsm8k --data " + data.string() + " --predictions " + pred.string(), true);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("gsm8k_pred.jsonl:2: \"idx\" 9 is outside"), std::string::npos) << bad.out;
}

// gsm8k --cot is lm-eval's gsm8k_cot: reported under that name, its strict filter
// "The answer is N." (a "#### N" completion is not strict there, only flexible).
TEST_F(EvalCli, Gsm8kCotPredictions) {
  const fs::path data = test::make_gsm8k(*dir_ / "gsm8k_cot.jsonl");
  const fs::path preds = *dir_ / "gsm8k_cot_preds.jsonl";
  write_text(preds,
             "{\"idx\": 0, \"completion\": \" He had 3, then 4 more. 3 + 4 = 7. The answer is 7.\"}\n"
             "{\"idx\": 1, \"completion\": \" 1200 + 5 = 1205\\n#### 1,205\"}\n"
             "{\"idx\": 2, \"completion\": \" The answer is 3.\"}\n");
  const json j = run_json("eval gsm8k --cot --data " + data.string() + " --predictions " + preds.string());
  EXPECT_EQ(j["task"], "gsm8k_cot");
  EXPECT_DOUBLE_EQ(j["exact_match_strict"].get<double>(), 1.0 / 3);   // only row 0 (row 2 is -3)
  EXPECT_DOUBLE_EQ(j["exact_match_flexible"].get<double>(), 2.0 / 3);  // rows 0 and 1
  EXPECT_DOUBLE_EQ(j["exact_match"].get<double>(), 2.0 / 3);  // strict, else flexible: rows 0 and 1
  const json same = run_json("eval gsm8k_cot --data " + data.string() + " --predictions " + preds.string());
  EXPECT_EQ(same["exact_match_strict"], j["exact_match_strict"]);
  const Result bad = run_teddy("eval mmlu --cot --data " + data.string() + " --predictions " + preds.string(), true);
  EXPECT_NE(bad.out.find("--cot: only for gsm8k"), std::string::npos) << bad.out;
}

// --adapter DIR: a PEFT adapter on the checkpoint, scored unmerged, gives the scores of
// the merged model (`teddy lora merge`) up to float rounding. Bound, per continuation:
// merging changes only the rounding inside the adapted linears; each output of a
// linear of fan-in n moves by at most about n*u relative (u = 2^-24, fp32 sums), at most
// 4 adapted linears per block on the path through n_layer blocks, and a continuation
// of T tokens sums T log-probabilities: |dll| <= T * 4 * n_layer * d_ff * u * max(1, |ll|)
// (gpt2-tiny: n_layer 2, d_ff 128 is the largest fan-in). The adapter itself moves the
// scores far more than that (checked), so a dropped adapter fails.
TEST_F(EvalCli, AdapterScoresEqualTheMergedModel) {
  const fs::path adapter = *dir_ / "adapter";
  {
    ModelConfig c = ModelConfig::preset("gpt2-tiny");
    c.vocab_size = 257;
    c.padded_vocab_size = ModelConfig::pad_vocab(257);
    c.max_seq_len = 256;
    Model m(c);
    m.init_weights(7);  // make_run's base
    LoraConfig l;
    l.r = 4;
    l.alpha = 8;
    l.targets = {"all"};
    m.enable_lora(l, 3);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 0.2f);
    for (size_t i = 0; i < m.flat_size(); ++i) m.params()[i] = nd(rng);  // A and B both non-zero
    save_peft_adapter(m, adapter.string(), "teddy-test-base");
  }
  const fs::path data = test::make_arc(*dir_ / "arc_adapter.jsonl");
  const fs::path la = *dir_ / "with_adapter.jsonl", lm = *dir_ / "merged.jsonl", lb = *dir_ / "base.jsonl";
  const json ja = run_json("eval arc_challenge --checkpoint " + *run_ + " --adapter " + adapter.string() + " --data " +
                           data.string() + " --log-samples " + la.string());
  EXPECT_EQ(ja["info"]["adapter"], adapter.string());
  const fs::path merged = *dir_ / "merged_run";
  fs::remove_all(merged);
  const Result mr = run_teddy("lora merge --base " + *run_ + " --adapter " + adapter.string() + " --out " + merged.string(), true);
  ASSERT_EQ(mr.rc, 0) << mr.out;
  const json jm = run_json("eval arc_challenge --checkpoint " + merged.string() + " --data " + data.string() +
                           " --log-samples " + lm.string());
  run_json("eval arc_challenge --checkpoint " + *run_ + " --data " + data.string() + " --log-samples " + lb.string());
  const std::vector<json> a = read_lines(la), b = read_lines(lm), base = read_lines(lb);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), base.size());
  constexpr double u = 1.0 / (1 << 24);
  const double per_token = 4.0 * 2 * 128 * u;
  double max_rel_gap = 0, adapter_effect = 0;
  bool same_predictions = true;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<double> x = a[i]["loglikelihoods"], y = b[i]["loglikelihoods"], z = base[i]["loglikelihoods"];
    const std::vector<std::string> choices = a[i]["choices"];
    double margin = 1e300;  // the best choice's lead over the next, normalised by its bound
    std::vector<double> sorted = x;
    std::sort(sorted.rbegin(), sorted.rend());
    for (size_t k = 0; k < x.size(); ++k) {
      const double bound = static_cast<double>(choices[k].size()) * per_token * std::max(1.0, std::fabs(x[k]));
      EXPECT_LE(std::fabs(x[k] - y[k]), bound) << "sample " << i << " choice " << k;
      max_rel_gap = std::max(max_rel_gap, std::fabs(x[k] - y[k]) / bound);
      adapter_effect = std::max(adapter_effect, std::fabs(x[k] - z[k]) / bound);
      if (sorted.size() > 1) margin = std::min(margin, (sorted[0] - sorted[1]) / (2 * bound));
    }
    if (margin > 1) same_predictions = same_predictions && a[i]["prediction"] == b[i]["prediction"];
  }
  EXPECT_TRUE(same_predictions);
  EXPECT_GT(adapter_effect, 10.0) << "the adapter must move the scores far beyond the bound for this test to mean anything";
  // Where no choice is within the bound of another, the metrics are the same.
  EXPECT_EQ(ja["acc"], jm["acc"]);
  EXPECT_EQ(ja["acc_norm"], jm["acc_norm"]);
  std::printf("largest |d loglik| / bound: %.3g; adapter effect / bound: %.3g\n", max_rel_gap, adapter_effect);
  // An adapter for another base is named.
  const Result bad = run_teddy("eval arc_challenge --checkpoint " + *run_ + " --adapter " + (*dir_ / "nope").string() +
                               " --data " + data.string(), true);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("nope"), std::string::npos) << bad.out;
}

TEST_F(EvalCli, HumanEvalCanonicalPassEmptyAndWrongFail) {
  const fs::path data = test::make_humaneval(*dir_ / "HumanEval.jsonl.gz");
  const std::vector<HumanEvalTask> tasks = read_humaneval(data.string());
  const fs::path canon = *dir_ / "canonical.jsonl", empty = *dir_ / "empty.jsonl", mixed = *dir_ / "mixed.jsonl";
  std::string c, e, m;
  for (const HumanEvalTask& t : tasks) {
    c += json({{"task_id", t.task_id}, {"completion", t.canonical_solution}}).dump() + "\n";
    e += json({{"task_id", t.task_id}, {"completion", ""}}).dump() + "\n";
  }
  write_text(canon, c);
  write_text(empty, e);
  EXPECT_EQ(run_json("eval humaneval --data " + data.string() + " --predictions " + canon.string())["pass@1"], 1.0);
  EXPECT_EQ(run_json("eval humaneval --data " + data.string() + " --predictions " + empty.string())["pass@1"], 0.0);
  // 10 samples per task: task 0 gets 3 right, task 1 none, task 2 all ten; the wrong
  // ones return a - b, a hanging loop, and a crash.
  const char* wrong[] = {"    return a - b\n", "    while True: pass\n", "    raise SystemExit(3)\n"};
  for (int k = 0; k < 10; ++k) {
    m += json({{"task_id", "HumanEval/0"}, {"completion", k < 3 ? tasks[0].canonical_solution : wrong[k % 3]}}).dump() + "\n";
    m += json({{"task_id", "HumanEval/1"}, {"completion", "    return n % 2 == 1\n"}}).dump() + "\n";
    m += json({{"task_id", "HumanEval/2"}, {"completion", tasks[2].canonical_solution}}).dump() + "\n";
  }
  write_text(mixed, m);
  const json j = run_json("eval humaneval --timeout 2 --data " + data.string() + " --predictions " + mixed.string());
  EXPECT_NEAR(j["pass@1"].get<double>(), (0.3 + 0.0 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(j["pass@10"].get<double>(), (1.0 + 0.0 + 1.0) / 3, 1e-12);
  // Generation with the model runs end to end (a random model fails; 0 is expected).
  const json g = run_json("eval humaneval --checkpoint " + *run_ + " --data " + data.string() + " --limit 1 --max-tokens 8");
  EXPECT_EQ(g["n"], 1);
  EXPECT_TRUE(g.contains("pass@1"));
  // A task without completions is refused.
  write_text(mixed, json({{"task_id", "HumanEval/0"}, {"completion", "x"}}).dump() + "\n");
  const Result bad = run_teddy("eval humaneval --data " + data.string() + " --predictions " + mixed.string(), true);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("task HumanEval/1 of"), std::string::npos) << bad.out;
}

TEST_F(EvalCli, PerplexityOnTextAndJsonl) {
  write_text(*dir_ / "ppl" / "a.txt", "the cat sat on the mat. the cat sat on the mat.\n");
  write_text(*dir_ / "ppl.jsonl", R"({"text": "the cat sat on the mat. the cat sat on the mat.\n"})" "\n");
  const json a = run_json("eval perplexity --checkpoint " + *run_ + " --data " + (*dir_ / "ppl").string());
  const json b = run_json("eval perplexity --checkpoint " + *run_ + " --data " + (*dir_ / "ppl.jsonl").string());
  EXPECT_EQ(a["n"], 1);
  EXPECT_DOUBLE_EQ(a["perplexity"].get<double>(), b["perplexity"].get<double>());  // same text, same windows
  // Byte-level tokenizer: tokens are bytes, so byte perplexity is token perplexity and
  // bits per byte is its log2 (both from the same sum: a few ulps).
  EXPECT_NEAR(a["byte_perplexity"].get<double>(), a["perplexity"].get<double>(), 1e-12 * a["perplexity"].get<double>());
  EXPECT_NEAR(a["bits_per_byte"].get<double>(), std::log2(a["perplexity"].get<double>()), 1e-12);
  // A random model is near uniform over 257 ids (not a bound, a sanity range).
  EXPECT_GT(a["perplexity"].get<double>(), 100.0);
  EXPECT_LT(a["perplexity"].get<double>(), 1000.0);
}

TEST_F(EvalCli, ArenaBattleBetweenModels) {
  const std::string other = test::make_run(*dir_ / "other", 8);  // another random model
  write_text(*dir_ / "prompts.jsonl", R"({"prompt": "2 + 2 =", "reference": "4"})" "\n"
                                      R"({"prompt": "The capital of France is", "reference": "Paris"})" "\n"
                                      R"({"question": "Opposite of hot?", "answer": "cold"})" "\n");
  const fs::path out = *dir_ / "battles.jsonl";
  const Result r = run_teddy("arena battle --model A=" + *run_ + " --model B=" + *run_ + " --model C=" + other +
                                 " --prompts " + (*dir_ / "prompts.jsonl").string() + " --out " + out.string() + " --bootstrap 0",
                             true);
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::vector<json> b = read_lines(out);
  ASSERT_EQ(b.size(), 9u);  // 3 prompts x 3 pairs
  for (const json& x : b) {
    const double sa = x["score_a"], sb = x["score_b"];
    EXPECT_EQ(x["winner"], sa > sb ? "model_a" : sa < sb ? "model_b" : "tie");
    if (x["model_a"] == "A" && x["model_b"] == "B") EXPECT_EQ(x["winner"], "tie");  // the same model
  }
  // The battles file is what `teddy arena` reads.
  const Result again = run_teddy("arena --bootstrap 0 --battles " + out.string(), true);
  EXPECT_EQ(again.rc, 0) << again.out;
  const Result ex = run_teddy("arena battle --judge exact -n 4 --model A=" + *run_ + " --model C=" + other + " --prompts " +
                                  (*dir_ / "prompts.jsonl").string() + " --out " + out.string(),
                              true);
  ASSERT_EQ(ex.rc, 0) << ex.out;
  EXPECT_TRUE(read_lines(out)[0].contains("answer_a"));
}

TEST_F(EvalCli, ErrorsNameTheTaskFileLineAndField) {
  const Result unknown = run_teddy("eval nosuch --checkpoint " + *run_ + " --data x", true);
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.out.find("unknown task 'nosuch' (known: mmlu, arc_challenge, gsm8k, gsm8k_cot, humaneval, perplexity)"), std::string::npos)
      << unknown.out;
  write_text(*dir_ / "bad_arc.jsonl", R"({"question": {"stem": "q", "choices": []}})" "\n" "{oops\n");
  const Result json_err = run_teddy("eval arc_challenge --checkpoint " + *run_ + " --data " + (*dir_ / "bad_arc.jsonl").string(), true);
  EXPECT_EQ(json_err.rc, 1);
  EXPECT_NE(json_err.out.find("bad_arc.jsonl:2: invalid JSON at column 2"), std::string::npos) << json_err.out;
  write_text(*dir_ / "bad_arc.jsonl", R"({"question": {"stem": "q", "choices": []}})" "\n");
  const Result bad = run_teddy("eval arc_challenge --checkpoint " + *run_ + " --data " + (*dir_ / "bad_arc.jsonl").string(), true);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("bad_arc.jsonl:1: a question needs at least 2 choices"), std::string::npos) << bad.out;
  write_text(*dir_ / "bad_gsm.jsonl", R"({"question": "q"})" "\n");
  const Result missing = run_teddy("eval gsm8k --checkpoint " + *run_ + " --data " + (*dir_ / "bad_gsm.jsonl").string(), true);
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.out.find("bad_gsm.jsonl:1: missing field \"answer\""), std::string::npos) << missing.out;
  const Result nomodel = run_teddy("eval arc_challenge --data " + (*dir_ / "bad_arc.jsonl").string(), true);
  EXPECT_EQ(nomodel.rc, 1);
  EXPECT_NE(nomodel.out.find("give --checkpoint or --model"), std::string::npos) << nomodel.out;
}

}  // namespace
}  // namespace teddy
