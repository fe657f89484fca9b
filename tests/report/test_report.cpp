// `teddy report`: reading run directories (bad ones named), the page's tables and
// charts, and the CLI. Runs are written here in the format the Trainer writes
// (tests/train/test_pretrain.cpp checks the Trainer's side of metrics.jsonl).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "teddy/core/error.h"
#include "teddy/report/html_report.h"
#include "teddy/report/run_log.h"

namespace teddy::report {
namespace {

namespace fs = std::filesystem;

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("teddy_report_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A pretraining run of `steps` steps: loss 5 -> ~2, validation every 10 steps.
  // With evals: benchmark records every 20 steps (mmlu acc / acc_stderr, gsm8k exact_match).
  std::string make_run(const std::string& name, int steps, double lr, bool fp16 = false, const std::string& tail = "",
                       bool evals = false) {
    const fs::path d = root_ / name;
    fs::create_directories(d);
    std::ofstream m(d / "metrics.jsonl");
    for (int s = 1; s <= steps; ++s) {
      const double loss = 2 + 3 * std::exp(-s / 50.0) + (s == steps / 2 ? 1.5 : 0.0);  // one spike
      m << "{\"step\":" << s << ",\"loss\":" << loss << ",\"lr\":" << lr << ",\"grad_norm\":"
        << (fp16 && s == 3 ? std::string("null") : std::to_string(1.0 / s)) << ",\"tokens\":" << 256 * s
        << ",\"tokens_per_s\":1000.5,\"mfu\":0.25,\"step_s\":0.25,\"peak_rss_bytes\":" << 1000000 + s;
      if (fp16) m << ",\"loss_scale\":" << (s < 4 ? 65536 : 32768) << ",\"skipped\":false,\"skipped_steps\":" << (s < 4 ? 0 : 1);
      m << "}\n";
      if (s % 10 == 0) m << "{\"step\":" << s << ",\"val_loss\":" << 2.5 + 2 * std::exp(-s / 50.0) << "}\n";
      if (evals && s % 20 == 0) {
        m << "{\"step\":" << s << ",\"tokens\":" << 256 * s << ",\"eval\":\"mmlu\",\"n\":57,\"acc\":" << 0.25 + s / 1000.0
          << ",\"acc_stderr\":0.05,\"eval_s\":1.5}\n";
        m << "{\"step\":" << s << ",\"tokens\":" << 256 * s << ",\"eval\":\"gsm8k\",\"n\":8,\"exact_match\":" << s / 800.0
          << ",\"eval_s\":3}\n";
      }
    }
    m << tail;
    std::ofstream(d / "config.toml") << "[model]\npreset = \"gpt2-tiny\"\n[optim]\nlr = " << lr
                                     << "\ngrad_clip = 1.0\n[run]\ndir = \"" << d.string() << "\"\n";
    return d.string();
  }
  fs::path root_;
};

TEST_F(ReportTest, ReadsARunWithItsModelAndValidations) {
  const RunLog r = read_run(make_run("a", 40, 3e-4));
  EXPECT_EQ(r.label, "a");
  ASSERT_EQ(r.steps.size(), 40u);
  ASSERT_EQ(r.vals.size(), 4u);
  EXPECT_EQ(r.vals[1].step, 20);
  EXPECT_EQ(r.vals[1].tokens, 256 * 20);  // placed on the token axis at its step
  EXPECT_EQ(r.model, "gpt2-tiny");
  ASSERT_TRUE(r.params.has_value());
  EXPECT_GT(*r.params, 0);
  EXPECT_DOUBLE_EQ(r.wall_s(), 40 * 0.25);
  EXPECT_EQ(r.best_val_step(), 40);
  EXPECT_EQ(r.config.at("optim.lr"), "0.0003");
  EXPECT_TRUE(r.warnings.empty());
}

TEST_F(ReportTest, BadRunsAreNamed) {
  auto message = [](const std::string& dir) {
    try {
      read_run(dir);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string missing = (root_ / "nope").string();
  EXPECT_NE(message(missing).find(missing), std::string::npos);
  fs::create_directories(root_ / "empty_dir");
  const std::string m1 = message((root_ / "empty_dir").string());
  EXPECT_NE(m1.find("not a teddy run directory"), std::string::npos) << m1;
  fs::create_directories(root_ / "no_steps");
  std::ofstream(root_ / "no_steps" / "metrics.jsonl") << "";
  const std::string m2 = message((root_ / "no_steps").string());
  EXPECT_NE(m2.find("no_steps/metrics.jsonl: no training step"), std::string::npos) << m2;
  fs::create_directories(root_ / "bad_middle");
  std::ofstream(root_ / "bad_middle" / "metrics.jsonl") << "{\"step\":1,\"loss\":3}\n{\"step\":2,\"lo\n{\"step\":3,\"loss\":2}\n";
  const std::string m3 = message((root_ / "bad_middle").string());
  EXPECT_NE(m3.find("bad_middle/metrics.jsonl:2:"), std::string::npos) << m3;
}

TEST_F(ReportTest, ACutLastLineIsSkippedWithAWarning) {
  const RunLog r = read_run(make_run("cut", 12, 1e-3, false, "{\"step\":13,\"loss\":2.1,\"lr\":0.00"));
  EXPECT_EQ(r.steps.size(), 12u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("metrics.jsonl:14: skipped the last line"), std::string::npos) << r.warnings[0];
}

TEST_F(ReportTest, PageComparesRunsAndFetchesNothing) {
  const std::vector<RunLog> runs{read_run(make_run("lr3e-4", 200, 3e-4)), read_run(make_run("lr1e-3", 200, 1e-3, true))};
  const std::string html = render_html(runs, {});
  for (const char* want : {"lr3e-4", "lr1e-3", "<code>optim.lr</code>", "fp16 loss scale", "clip 1<", "gpt2-tiny"})
    EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_EQ(html.find("<code>run.dir</code>"), std::string::npos);  // always differs: not listed
  // Self-contained: no URL, external resource or stylesheet import; the one inline
  // script (the hover read-out) loads and requests nothing.
  for (const char* banned : {"http:", "https:", "src=", "href=", "url(", "@import", "fetch(", "XMLHttpRequest",
                             "import(", "WebSocket", "sendBeacon", "<link", "<iframe"})
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  const size_t script = html.find("<script>");
  ASSERT_NE(script, std::string::npos) << "the hover read-out";
  EXPECT_EQ(html.find("<script", script + 1), std::string::npos) << "one script only";
  // Each chart carries its data for the read-out: the loss chart's first point is step 1's.
  char first[64];
  std::snprintf(first, sizeof first, "[256,%.7g]", runs[0].steps[0].loss);
  EXPECT_NE(html.find(first), std::string::npos) << first;
  // The summary's final training loss is the last step's, as metrics.jsonl has it.
  char want[64];
  std::snprintf(want, sizeof want, "<td>%.4g</td>", runs[0].steps.back().loss);
  EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_EQ(differing_config_keys(runs), std::vector<std::string>{"optim.lr"});
}

// Evaluation records ([eval.<task>] during training): one chart per task and metric
// with the runs overlaid (standard errors left out), the last value in the summary.
TEST_F(ReportTest, EvaluationMetricsOverSteps) {
  const std::vector<RunLog> runs{read_run(make_run("a", 100, 3e-4, false, "", true)),
                                 read_run(make_run("b", 60, 1e-3, false, "", true))};
  ASSERT_EQ(runs[0].steps.size(), 100u) << "eval records are not steps";
  ASSERT_EQ(runs[0].evals.size(), 10u);
  EXPECT_EQ(runs[0].evals[0].task, "mmlu");
  EXPECT_EQ(runs[0].evals[0].step, 20);
  EXPECT_EQ(runs[0].evals[0].tokens, 256 * 20);
  EXPECT_DOUBLE_EQ(runs[0].evals[0].metrics.at("acc"), 0.25 + 20 / 1000.0);
  const auto charts = build_charts(runs, {});
  std::map<std::string, Chart> by;
  for (const auto& [stem, c] : charts) by[stem] = c;
  ASSERT_TRUE(by.count("eval_mmlu_acc"));
  ASSERT_TRUE(by.count("eval_gsm8k_exact_match"));
  EXPECT_FALSE(by.count("eval_mmlu_acc_stderr"));
  const Chart& acc = by["eval_mmlu_acc"];
  ASSERT_EQ(acc.series.size(), 2u);
  ASSERT_EQ(acc.series[0].points.size(), 5u);
  ASSERT_EQ(acc.series[1].points.size(), 3u);
  EXPECT_EQ(acc.series[1].points[2].first, 60.0);
  EXPECT_DOUBLE_EQ(acc.series[1].points[2].second, 0.25 + 60 / 1000.0);
  const std::string html = render_html(runs, {});
  EXPECT_NE(html.find("Evaluation: mmlu acc"), std::string::npos);
  EXPECT_NE(html.find("<th>mmlu acc (last)</th>"), std::string::npos);
  char want[64];
  std::snprintf(want, sizeof want, "<td>%.4g</td>", 0.25 + 100 / 1000.0);  // run a's last mmlu acc
  EXPECT_NE(html.find(want), std::string::npos) << want;
}

TEST_F(ReportTest, LongRunsStaySmallAndKeepTheirSpike) {
  const RunLog r = read_run(make_run("long", 50000, 3e-4));
  const std::string html = render_html({r}, {});
  EXPECT_LT(html.size(), 400u * 1024) << "a 50k-step run's page";
  // The loss chart keeps the one-step spike at step 25000 (loss + 1.5).
  const auto charts = build_charts({r}, {});
  bool spike = false;
  for (const auto& [x, y] : charts[0].second.series[0].points) spike |= x == 256.0 * 25000 && y == r.steps[24999].loss;
  EXPECT_TRUE(spike);
  EXPECT_LE(charts[0].second.series[0].points.size(), 2000u);
}

TEST(Report, ThinKeepsOrderAndExtremes) {
  std::vector<std::pair<double, double>> p;
  for (int i = 0; i < 1000; ++i) p.emplace_back(i, std::sin(i * 0.1) + (i == 777 ? -5 : 0));
  const auto t = thin(p, 100);
  EXPECT_LE(t.size(), 100u);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_LT(t[i - 1].first, t[i].first);
  bool dip = false;
  for (const auto& q : t) dip |= q.first == 777;
  EXPECT_TRUE(dip);
  EXPECT_EQ(thin(p, 5000).size(), 1000u);  // short series pass unchanged
}

TEST(Report, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = nice_ticks(2.13, 4.87, 6);
  ASSERT_FALSE(t.empty());
  EXPECT_DOUBLE_EQ(t.front(), 2.5);
  EXPECT_DOUBLE_EQ(t.back(), 4.5);
  EXPECT_EQ(tick_label(25600), "25.6k");
  EXPECT_EQ(tick_label(3e6), "3M");
}

TEST_F(ReportTest, Cli) {
  const std::string a = make_run("a", 30, 3e-4), b = make_run("b", 30, 1e-3);
  const std::string bin = std::string(TEDDY_BINARY_DIR) + "/teddy report ";
  const fs::path out = root_ / "r.html";
  EXPECT_EQ(std::system((bin + a + " " + b + " --out " + out.string() + " > /dev/null").c_str()), 0);
  EXPECT_GT(fs::file_size(out), 1000u);
  const fs::path svg = root_ / "svg";
  EXPECT_EQ(std::system((bin + a + " --format svg --out " + svg.string() + " > /dev/null").c_str()), 0);
  EXPECT_TRUE(fs::exists(svg / "loss.svg"));
  EXPECT_TRUE(fs::exists(svg / "grad_norm.svg"));
  const std::string bad = (root_ / "not_a_run").string();
  fs::create_directories(bad);
  const int rc = std::system((bin + bad + " --out " + (root_ / "x.html").string() + " 2> " + (root_ / "err").string()).c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
  std::ifstream e(root_ / "err");
  const std::string err((std::istreambuf_iterator<char>(e)), {});
  EXPECT_NE(err.find(bad + ": not a teddy run directory"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(root_ / "x.html"));
}

}  // namespace
}  // namespace teddy::report
