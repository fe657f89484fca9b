// Evaluation during training ([eval.<task>] in pretrain / SFT configs): the config's
// tables, overrides and errors; and a `teddy pretrain` run whose metrics.jsonl records
// (and TensorBoard scalars eval/<task>/<metric>) equal `teddy eval` of the checkpoint
// at each evaluated step exactly, with no duplicate after a resume.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/run_teddy.h"
#include "eval/eval_fixtures.h"
#include "eval/eval_record_match.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/core/error.h"
#include "teddy/train/pretrain_config.h"
#include "teddy/train/sft_config.h"
#include "train/sft_test_util.h"
#include "train/tensorboard_check.h"
#include "train/word_dataset.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::scratch_dir;
using test::write_text;

using Result = teddy::test::CliResult;

using teddy::test::run_teddy;

std::string config_error(const std::string& text, const std::vector<std::string>& ov = {}) {
  try {
    PretrainConfig::parse(text, "p.toml", ov).validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

class TrainingEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(scratch_dir("training_eval"));
    test::make_mmlu(*dir_ / "mmlu");
    test::make_arc(*dir_ / "arc.jsonl");
    test::make_gsm8k(*dir_ / "gsm8k.jsonl");
    write_text(*dir_ / "ppl.txt", "the cat sat on the mat. the dog ran far away home.\n");
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path* dir_;
};
fs::path* TrainingEval::dir_ = nullptr;

TEST_F(TrainingEval, ConfigTablesOverridesAndErrors) {
  const std::string mmlu = (*dir_ / "mmlu").string(), arc = (*dir_ / "arc.jsonl").string();
  const std::string base = "[eval]\ninterval = 4\n[eval.mmlu]\ndata = \"" + mmlu + "\"\nshots = 1\nlimit = 2\n";
  PretrainConfig c = PretrainConfig::parse(base, "p.toml", {"eval.mmlu.limit=3", "eval.arc_challenge.data=" + arc});
  ASSERT_EQ(c.eval_tasks.size(), 2u);
  std::map<std::string, EvalTaskConfig> by;
  for (const auto& t : c.eval_tasks) by[t.task] = t;
  EXPECT_EQ(by["mmlu"].data, mmlu);
  EXPECT_EQ(by["mmlu"].shots, 1);
  EXPECT_EQ(by["mmlu"].limit, 3);  // the override wins
  EXPECT_EQ(by["arc_challenge"].data, arc);
  EXPECT_EQ(c.task_interval(), 4);  // eval.interval when task_interval is not given
  EXPECT_EQ(PretrainConfig::parse(base, "p.toml", {"eval.task_interval=10"}).task_interval(), 10);
  // The resolved config (config.toml) reads back to the same tasks.
  const PretrainConfig back = PretrainConfig::parse(c.to_toml(), "config.toml", {});
  ASSERT_EQ(back.eval_tasks.size(), 2u);
  EXPECT_EQ(back.task_interval(), 4);
  for (const auto& t : back.eval_tasks) {
    EXPECT_EQ(t.data, by[t.task].data);
    EXPECT_EQ(t.limit, by[t.task].limit);
    EXPECT_EQ(t.shots, by[t.task].shots);
  }
  // SFT configs take the same tables.
  EXPECT_EQ(SftConfig::parse("[model]\ninit = \"x\"\n[data]\ntrain = \"y\"\n" + base.substr(0), "s.toml", {}).eval_tasks.size(), 1u);

  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  std::string e = config_error("[eval.mmlux]\ndata = \"" + mmlu + "\"\n");
  EXPECT_TRUE(has(e, "eval.mmlux")) << e;
  e = config_error("[eval.mmlu]\ndata = \"" + mmlu + "\"\nshot = 2\n");
  EXPECT_TRUE(has(e, "eval.mmlu.shot: unknown key") && has(e, "shots")) << e;
  e = config_error("[eval.gsm8k]\nshots = 2\n");
  EXPECT_TRUE(has(e, "eval.gsm8k.data: required")) << e;
  e = config_error("[eval.gsm8k]\ndata = \"/no/such/gsm8k.jsonl\"\n");
  EXPECT_TRUE(has(e, "eval.gsm8k.data: /no/such/gsm8k.jsonl: no such file")) << e;
  e = config_error("[eval.mmlu]\ndata = \"" + mmlu + "\"\nlimit = \"all\"\n");
  EXPECT_TRUE(has(e, "eval.mmlu.limit: expected an integer")) << e;
  e = config_error("[eval.mmlu]\ndata = \"" + mmlu + "\"\nbatch_size = 0\n");
  EXPECT_TRUE(has(e, "eval.mmlu.batch_size: must be >= 1")) << e;
  e = config_error("[eval]\ntask_interval = -3\n");
  EXPECT_TRUE(has(e, "eval.task_interval: must be >= 0")) << e;
  e = config_error("[eval]\nmmlu = 3\n");
  EXPECT_TRUE(has(e, "eval.mmlu: expected a table")) << e;
  e = config_error("", {"eval.mmlu.limit.x=3"});
  EXPECT_TRUE(has(e, "section.table.key")) << e;
}

// Reads metrics.jsonl's benchmark records: (step, task) -> record.
std::map<std::pair<int64_t, std::string>, json> eval_records(const fs::path& run, size_t* count) {
  std::map<std::pair<int64_t, std::string>, json> out;
  *count = 0;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (!j.contains("eval")) continue;
    ++*count;
    out[{j["step"].get<int64_t>(), j["eval"].get<std::string>()}] = j;
  }
  return out;
}

TEST_F(TrainingEval, PretrainRecordsEqualTeddyEvalOfTheCheckpoints) {
  const fs::path root = *dir_ / "pretrain";
  const std::string dataset = test::make_word_dataset(root, 2, 400);
  const fs::path run = root / "run";
  const std::string mmlu = (*dir_ / "mmlu").string(), arc = (*dir_ / "arc.jsonl").string(),
                    gsm = (*dir_ / "gsm8k.jsonl").string(), ppl = (*dir_ / "ppl.txt").string();
  const std::string cfg = (root / "p.toml").string();
  write_text(cfg,
             "[model]\npreset = \"gpt2-tiny\"\nmax_seq_len = 256\n[data]\ndataset = \"" + dataset +
                 "\"\n[train]\nmicro_batch = 2\nseq_len = 16\nsteps = 4\nthreads = 1\n"
                 "[optim]\nwarmup_steps = 1\nlr = 0.01\n[eval]\ninterval = 2\nbatches = 1\ntask_interval = 2\n"
                 "[eval.mmlu]\ndata = \"" + mmlu + "\"\nshots = 1\nlimit = 2\n"
                 "[eval.arc_challenge]\ndata = \"" + arc + "\"\n"
                 "[eval.gsm8k]\ndata = \"" + gsm + "\"\nshots = 1\nmax_tokens = 6\n"
                 "[eval.perplexity]\ndata = \"" + ppl + "\"\n"
                 "[checkpoint]\ninterval = 2\nkeep = 0\n[run]\npeak_gflops = 100\ndir = \"" + run.string() + "\"\n");
  // Stopped after step 2 and resumed: the evaluation at step 2 is not repeated.
  Result r = run_teddy("pretrain -c " + cfg + " --stop-after 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 2: eval mmlu (n 3) acc "), std::string::npos) << r.out;
  r = run_teddy("pretrain -c " + cfg + " --resume");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("benchmark evaluation ([eval] tasks): 1 evaluations"), std::string::npos) << r.out;

  size_t count = 0;
  const auto recs = eval_records(run, &count);
  EXPECT_EQ(count, 8u) << "4 tasks at steps 2 and 4, each once";
  ASSERT_EQ(recs.size(), 8u);
  // `teddy eval` of the checkpoint at that step, with the same settings and thread count.
  const std::map<std::string, std::string> args{
      {"mmlu", "mmlu --data " + mmlu + " --shots 1 --limit 2"},
      {"arc_challenge", "arc_challenge --data " + arc},
      {"gsm8k", "gsm8k --data " + gsm + " --shots 1 --max-tokens 6"},
      {"perplexity", "perplexity --data " + ppl}};
  for (const auto& [key, rec] : recs) {
    const auto& [step, task] = key;
    const Result e = run_teddy("eval " + args.at(task) + " --checkpoint " + checkpoint_dir(run.string(), step) + " --json");
    ASSERT_EQ(e.rc, 0) << e.out;
    const json want = json::parse(e.out.substr(e.out.find('{')));
    EXPECT_EQ(rec["n"], want["n"]) << task << " at step " << step;
    size_t compared = 0;
    for (const auto& [name, v] : want.items()) {
      if (!v.is_number() || name == "n" || name == "seconds") continue;
      ASSERT_TRUE(rec.contains(name)) << task << " at step " << step << ": no " << name << " in " << rec;
      EXPECT_TRUE(test::eval_metric_matches(task, name, rec[name].get<double>(), v.get<double>()))
          << task << " " << name << " at step " << step << ": " << rec[name] << " vs " << v;
      ++compared;
    }
    EXPECT_GT(compared, 0u) << task;
    EXPECT_GT(rec["tokens"].get<int64_t>(), 0);
    EXPECT_GE(rec["eval_s"].get<double>(), 0.0);
  }
  // Every record's metrics are TensorBoard scalars eval/<task>/<metric> at its step
  // (read by tests/reference/tfevents_reader.py).
  test::expect_tensorboard_matches_metrics(run.string());
  // `teddy report` charts them over steps and puts the last values in the summary.
  const fs::path page = root / "report.html";
  const Result rep = run_teddy("report " + run.string() + " --out " + page.string());
  ASSERT_EQ(rep.rc, 0) << rep.out;
  std::ifstream in(page);
  const std::string html((std::istreambuf_iterator<char>(in)), {});
  for (const char* want : {"id=\"eval_mmlu_acc\"", "id=\"eval_arc_challenge_acc_norm\"", "id=\"eval_gsm8k_exact_match\"",
                           "id=\"eval_perplexity_bits_per_byte\"", "Evaluation: mmlu acc", "<th>mmlu acc (last)</th>"})
    EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_EQ(html.find("eval_mmlu_acc_stderr"), std::string::npos);

  // SFT with LoRA from that run: its perplexity records equal `teddy eval` of its checkpoints,
  // which loads a LoRA run with the adapters folded in (the snapshot does the same).
  const fs::path sft_run = root / "sft";
  const std::string sft_cfg = (root / "s.toml").string();
  write_text(sft_cfg, "[model]\ninit = \"" + run.string() + "\"\n[data]\ntrain = \"" + test::make_sft_data(root) +
                          "\"\nval_fraction = 0.1\n[train]\nmicro_batch = 2\nseq_len = 32\nsteps = 2\nthreads = 1\n"
                          "[optim]\nwarmup_steps = 1\nlr = 0.01\n[lora]\nr = 4\n[eval]\ninterval = 2\nbatches = 1\n"
                          "[eval.perplexity]\ndata = \"" + ppl + "\"\n[checkpoint]\ninterval = 2\nkeep = 0\n"
                          "[run]\npeak_gflops = 100\ndir = \"" + sft_run.string() + "\"\n");
  r = run_teddy("sft -c " + sft_cfg);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto sft_recs = eval_records(sft_run, &count);
  ASSERT_EQ(count, 1u);
  const json& rec = sft_recs.begin()->second;
  const Result e = run_teddy("eval " + args.at("perplexity") + " --checkpoint " + checkpoint_dir(sft_run.string(), 2) + " --json");
  ASSERT_EQ(e.rc, 0) << e.out;
  const json want = json::parse(e.out.substr(e.out.find('{')));
  // Perplexity moves with any weight (an unmerged or missing adapter would show).
  for (const char* m : {"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"})
    EXPECT_TRUE(test::eval_metric_matches("perplexity", m, rec[m].get<double>(), want[m].get<double>()))
        << m << ": " << rec[m] << " vs " << want[m];
}

}  // namespace
}  // namespace teddy
