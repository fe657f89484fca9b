// `teddy pretrain` under mpirun, end to end: every ZeRO stage follows the single
// process's loss trajectory, a checkpoint saved with N ranks resumes with M ranks
// and in one process, a killed or failing rank stops the whole job with a message
// naming it (and the last checkpoint stays loadable), bad layouts and incomplete
// checkpoints are refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "checkpoint/legacy_writer.h"
#include "distributed/mpi_run.h"
#include "eval/eval_record_match.h"
#include "teddy/data/prepare.h"
#include "teddy/model/model.h"
#include "teddy/checkpoint/checkpoint.h"
#include "train/word_dataset.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

const std::string kTeddy = std::string(TEDDY_BINARY_DIR) + "/teddy";

std::string make_dataset(const fs::path& root) { return test::make_word_dataset(root, 6, 800); }

class PretrainDist : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("teddy_pretrain_dist_" + std::to_string(getpid()));
    fs::remove_all(root_);
    dataset_ = make_dataset(root_);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Global batch 6 rows of 32 tokens: micro_batch = 6 / ranks.
  static std::string args(const std::string& run, int ranks, int steps = 20) {
    return " pretrain data.dataset=" + dataset_ + " run.dir=" + (root_ / run).string() +
           " model.preset=gpt2-tiny train.seq_len=32 train.micro_batch=" + std::to_string(6 / ranks) +
           " train.steps=" + std::to_string(steps) +
           " train.grad_accum=1 train.threads=1 train.seed=7 optim.lr=3e-3 optim.warmup_steps=4"
           " eval.interval=10 eval.batches=1 checkpoint.interval=5 checkpoint.keep=0 run.peak_gflops=100";
  }
  static MpiResult single(const std::string& run, const std::string& extra = "") {
    return run_command("env OMP_NUM_THREADS=1 timeout 120 " + kTeddy + args(run, 1) + " " + extra);
  }
  static MpiResult ranks(int np, const std::string& run, const std::string& extra = "", int steps = 20) {
    return mpi_run(np, kTeddy + args(run, np, steps) + " " + extra, 120);
  }
  // step -> training loss, and step -> validation loss (or any key; true/false as 1/0), from metrics.jsonl.
  static std::map<int, double> losses(const std::string& run, const char* key = "loss") {
    std::map<int, double> m;
    std::ifstream in(root_ / run / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains(key)) m[j["step"].get<int>()] = j[key].is_boolean() ? j[key].get<bool>() : j[key].get<double>();
    }
    return m;
  }
  // Two runs of the same training whose gradients are summed in another order (ranks'
  // partial sums against one process's GEMMs). Not derived from eps: Adam amplifies
  // the rounding along a trajectory (an element with a near-zero gradient can end
  // anywhere in its trust region), and the first-order bound on the loss (9 sum_s lr_s
  // ||dg_s||_1) is 4000x the separation seen (<= 1.1e-8 relative, docs/TESTING.md).
  // What is derived is each step of these same collectives and stages, at its own
  // point, in mpi_zero (StepVerifier); this test guards the plumbing around them (which
  // rows each rank reads, the global normalisation, checkpoint shards), whose smallest
  // error here, one of a step's 192 token rows trained on the wrong data, moves that
  // step's loss by ~5e-3 relative. 1e-5 sits between the two scales, 1000x from each.
  static void expect_same(const std::map<int, double>& want, const std::map<int, double>& got, int from = 1) {
    int compared = 0;
    double worst = 0;
    for (const auto& [step, loss] : want) {
      if (step < from) continue;
      ASSERT_TRUE(got.count(step)) << "step " << step;
      EXPECT_LE(std::fabs(got.at(step) - loss) / std::fabs(loss), 1e-5) << "step " << step;
      worst = std::max(worst, std::fabs(got.at(step) - loss) / std::fabs(loss));
      ++compared;
    }
    EXPECT_GT(compared, 0);
    std::printf("  largest relative loss difference to the reference run: %.3g\n", worst);
  }
  static fs::path root_;
  static std::string dataset_;
};
fs::path PretrainDist::root_;
std::string PretrainDist::dataset_;

TEST_F(PretrainDist, EveryStageFollowsTheSingleProcess) {
  const MpiResult s = single("single");
  ASSERT_EQ(s.rc, 0) << s.output;
  for (int zero : {0, 1, 2, 3}) {
    const std::string run = "np2_zero" + std::to_string(zero);
    const MpiResult r = ranks(2, run, "dist.zero=" + std::to_string(zero));
    ASSERT_EQ(r.rc, 0) << r.output;
    // Rank 0 alone prints, including every rank's state bytes.
    EXPECT_NE(r.output.find("# parallel: dp=2 tp=1 pp=1 cp=1 zero=" + std::to_string(zero)), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("rank 1 holds"), std::string::npos) << r.output;
    EXPECT_EQ(r.grep("# parallel:").size(), r.grep("# parallel:").find('\n') + 1) << "printed by more than one rank";
    expect_same(losses("single"), losses(run));
    expect_same(losses("single", "val_loss"), losses(run, "val_loss"));
  }
  const MpiResult r3 = ranks(3, "np3_zero3", "dist.zero=3");
  ASSERT_EQ(r3.rc, 0) << r3.output;
  expect_same(losses("single"), losses("np3_zero3"));
}

// [eval.<task>] under mpirun at ZeRO-3: rank 0 scores a snapshot of the gathered
// weights while rank 1 waits in short polls. The evaluation takes longer than
// dist.timeout_s (1 s: a perplexity pass over ~300 KB), so a blocking wait would trip
// the watchdog. Every record equals `teddy eval` of the checkpoint at its step, one
// process, one thread (rank 0's thread count): the same numbers exactly.
TEST_F(PretrainDist, EvalTasksOnRankZeroEqualTeddyEvalOfTheCheckpoints) {
  const fs::path text = root_ / "eval_ppl.txt";
  {
    std::ofstream t(text);  // long enough that one evaluation outlasts dist.timeout_s (1 s) on a fast CPU: ~3 s here
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"};
    for (int i = 0; i < 240000; ++i) t << words[(i * 7 + i / 13) % 10] << (i % 11 == 10 ? ".\n" : " ");
  }
  const fs::path arc = root_ / "eval_arc.jsonl";
  std::ofstream(arc) << R"({"id": "q1", "question": {"stem": "Which one sat on the mat?", "choices": [{"text": "the cat", "label": "A"}, {"text": "the dog", "label": "B"}]}, "answerKey": "A"})"
                     << "\n"
                     << R"({"id": "q2", "question": {"stem": "Where did the dog run?", "choices": [{"text": "far away", "label": "A"}, {"text": "on a mat", "label": "B"}, {"text": "home", "label": "C"}]}, "answerKey": "A"})"
                     << "\n";
  const std::string run = "np2_eval";
  const MpiResult r = ranks(2, run,
                            "dist.zero=3 dist.timeout_s=1 eval.task_interval=10 eval.arc_challenge.data=" + arc.string() +
                                " eval.perplexity.data=" + text.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  std::map<std::pair<int, std::string>, nlohmann::json> recs;
  double slowest = 0;
  std::ifstream in(root_ / run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("eval")) continue;
    EXPECT_TRUE(recs.emplace(std::make_pair(j["step"].get<int>(), j["eval"].get<std::string>()), j).second) << line;
    slowest = std::max(slowest, j["eval_s"].get<double>());
  }
  ASSERT_EQ(recs.size(), 4u) << "arc_challenge and perplexity at steps 10 and 20";
  EXPECT_GT(slowest, 1.0) << "the evaluation must outlast dist.timeout_s for this test to mean anything";
  for (const auto& [key, rec] : recs) {
    const std::string task = key.second == "perplexity" ? "perplexity --data " + text.string()
                                                        : "arc_challenge --data " + arc.string();
    const MpiResult e = run_command("env OMP_NUM_THREADS=1 " + kTeddy + " eval " + task + " --checkpoint " +
                                    checkpoint_dir((root_ / run).string(), key.first) + " --json 2>/dev/null");
    ASSERT_EQ(e.rc, 0) << e.output;
    const auto want = nlohmann::json::parse(e.output.substr(e.output.find('{')));
    EXPECT_EQ(rec["n"], want["n"]);
    for (const auto& [name, v] : want.items()) {
      if (v.is_number() && name != "n" && name != "seconds")
        EXPECT_TRUE(test::eval_metric_matches(key.second, name, rec[name].get<double>(), v.get<double>()))
            << key.second << " " << name << " at step " << key.first << ": " << rec[name] << " vs " << v;
    }
  }
  std::printf("  slowest evaluation: %.2f s (dist.timeout_s = 1)\n", slowest);
}

// Saved by 3 ranks at ZeRO-3 (every rank writes its shard of parameters, m and v):
// resumes with 3 ranks bit for bit as if never interrupted, with 2 ranks at ZeRO-0
// and in one process within the reduction-order tolerance (the ranks after the
// resume add their partial gradients in another order), and `teddy generate` reads it.
TEST_F(PretrainDist, ShardedCheckpointFromThreeRanksResumesWithTwoThreeAndOne) {
  ASSERT_EQ(single("ref").rc, 0);
  const MpiResult full = ranks(3, "full3", "dist.zero=3");
  ASSERT_EQ(full.rc, 0) << full.output;
  const MpiResult a = ranks(3, "saved3", "dist.zero=3 --stop-after 10");
  ASSERT_EQ(a.rc, 0) << a.output;
  const fs::path ckpt = root_ / "saved3" / "checkpoints" / "step_00000010";
  ASSERT_TRUE(fs::exists(ckpt / "manifest.json")) << a.output;
  EXPECT_FALSE(fs::exists(ckpt / "optimizer.safetensors"));
  nlohmann::json man = nlohmann::json::parse(std::ifstream(ckpt / "manifest.json"));
  EXPECT_EQ(man["world_size"], 3);
  EXPECT_EQ(man["zero_stage"], 3);
  EXPECT_EQ(man["step"], 10);
  ASSERT_EQ(man["shards"].size(), 3u);
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(fs::exists(ckpt / man["shards"][r]["file"].get<std::string>()));
  for (const char* to : {"to3", "to2", "to1"}) fs::copy(root_ / "saved3", root_ / to, fs::copy_options::recursive);

  const MpiResult b3 = ranks(3, "to3", "dist.zero=3 --resume");
  ASSERT_EQ(b3.rc, 0) << b3.output;
  EXPECT_NE(b3.output.find("resumed from step 10"), std::string::npos) << b3.output;
  const auto want3 = losses("full3"), got3 = losses("to3");
  for (int step = 11; step <= 20; ++step) {
    ASSERT_TRUE(got3.count(step)) << step;
    EXPECT_EQ(got3.at(step), want3.at(step)) << "step " << step << ": not bit for bit";
  }
  const MpiResult b2 = ranks(2, "to2", "dist.zero=0 --resume");  // m, v and params all-gathered from the shards
  ASSERT_EQ(b2.rc, 0) << b2.output;
  EXPECT_NE(b2.output.find("resumed from step 10"), std::string::npos) << b2.output;
  expect_same(losses("ref"), losses("to2"), 11);
  const MpiResult b1 = single("to1", "--resume");
  ASSERT_EQ(b1.rc, 0) << b1.output;
  EXPECT_NE(b1.output.find("resumed from step 10"), std::string::npos) << b1.output;
  expect_same(losses("ref"), losses("to1"), 11);

  const MpiResult g = run_command("env OMP_NUM_THREADS=1 timeout 60 " + kTeddy + " generate --checkpoint " + ckpt.string() +
                                  " --prompt 'the cat' -n 8 --temperature 0");
  EXPECT_EQ(g.rc, 0) << g.output;
  EXPECT_NE(g.output.find("the cat"), std::string::npos) << g.output;
}

// The single-file format teddy wrote before (model.safetensors, optimizer.safetensors,
// state.json) still resumes under mpirun: every rank reads its range of it. (A run
// writes the sharded format now; the step-10 checkpoint is rewritten in the old one
// by the old writer, tests/checkpoint/legacy_writer.h.)
TEST_F(PretrainDist, ASingleProcessCheckpointResumesWithTwoRanks) {
  ASSERT_EQ(single("oldref").rc, 0);
  ASSERT_EQ(single("oldformat", "--stop-after 10").rc, 0);
  test::convert_to_single_file((root_ / "oldformat" / "checkpoints" / "step_00000010").string());
  ASSERT_TRUE(fs::exists(root_ / "oldformat" / "checkpoints" / "step_00000010" / "state.json"));
  ASSERT_FALSE(fs::exists(root_ / "oldformat" / "checkpoints" / "step_00000010" / "manifest.json"));
  const MpiResult r = ranks(2, "oldformat", "dist.zero=2 --resume");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from step 10"), std::string::npos) << r.output;
  expect_same(losses("oldref"), losses("oldformat"), 11);
  EXPECT_TRUE(fs::exists(root_ / "oldformat" / "checkpoints" / "step_00000015" / "manifest.json"));
}

// A checkpoint of one process (the same format: one shard and a manifest) resumes
// with 2 ranks at ZeRO-3, each rank reading only its range of the one shard.
TEST_F(PretrainDist, AOneProcessCheckpointResumesWithTwoRanksAtZeroThree) {
  ASSERT_EQ(single("ref1").rc, 0);
  ASSERT_EQ(single("one", "--stop-after 10").rc, 0);
  const fs::path ckpt = root_ / "one" / "checkpoints" / "step_00000010";
  ASSERT_TRUE(fs::exists(ckpt / "shard_00000_of_00001.safetensors"));
  ASSERT_TRUE(fs::exists(ckpt / "manifest.json"));
  const MpiResult r = ranks(2, "one", "dist.zero=3 --resume");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from step 10"), std::string::npos) << r.output;
  expect_same(losses("ref1"), losses("one"), 11);
  EXPECT_TRUE(fs::exists(root_ / "one" / "checkpoints" / "step_00000015" / "shard_00001_of_00002.safetensors"));
}

// fp16 runs under mpirun: the loss scaler lives in the step engine, so every rank
// scales, skips and grows alike. Started at 2^26 with growth every 3 clean steps, the
// first steps overflow (skipped, the scale halves) and the scale then grows: each
// step's scale, skip flag and running skip count equal the one process's exactly (an
// overflow is decided by the global gradient norm, an all-reduce every rank shares,
// and the overflows here are orders of magnitude past fp16's range, not borderline);
// the losses agree within 1e-5 relative, the same bound as fp32 and, like it, not
// derived (a trajectory: docs/TESTING.md rule 6). Only summation order differs; fp16
// storage can turn a last-bit fp32 difference into a 2^-11 one on a few stored
// activations, which a mean over thousands of tokens dilutes: measured <= 1.9e-6. It
// separates that from plumbing errors (a missed bucket, a per-rank scale or loss
// normalisation: >= 1e-3).
TEST_F(PretrainDist, Fp16RunsUnderMpirunWithSkippedStepReporting) {
  const std::string fp16 =
      "train.precision=fp16 train.loss_scale=67108864 train.loss_scale_growth_interval=3 --print-every 1";
  const MpiResult one = single("fp16_one", fp16);
  ASSERT_EQ(one.rc, 0) << one.output;
  for (int zero : {0, 1, 3}) {
    const std::string run = "fp16_two_zero" + std::to_string(zero);
    const MpiResult two = ranks(2, run, fp16 + " dist.zero=" + std::to_string(zero));
    ASSERT_EQ(two.rc, 0) << two.output;
    EXPECT_NE(two.output.find("(overflow, step skipped)"), std::string::npos) << two.output;
    EXPECT_NE(two.output.find("fp16 loss scaling: "), std::string::npos) << two.output;
    EXPECT_EQ(losses("fp16_one", "loss_scale"), losses(run, "loss_scale"));
    EXPECT_EQ(losses("fp16_one", "skipped"), losses(run, "skipped"));
    EXPECT_EQ(losses("fp16_one", "skipped_steps"), losses(run, "skipped_steps"));
    const auto skipped = losses(run, "skipped_steps");
    ASSERT_FALSE(skipped.empty());
    EXPECT_GE(skipped.rbegin()->second, 2) << "no overflow exercised";
    EXPECT_LE(skipped.rbegin()->second, 10) << "no step applied";
    expect_same(losses("fp16_one"), losses(run));
    // The same summary line as one process's, from the same scaler state.
    EXPECT_NE(two.output.find(one.grep("fp16 loss scaling: ")), std::string::npos) << two.output;
  }
}

// train.tokens is a budget for the global batch: 2 ranks of micro_batch 3 run as
// many steps of 192 tokens as one process of micro_batch 6, and count the same tokens.
TEST_F(PretrainDist, TheTokenBudgetCountsEveryRank) {
  const std::string budget = "train.steps=0 train.tokens=1536";  // 8 steps of 6 x 32 tokens
  ASSERT_EQ(single("budget1", budget).rc, 0);
  const MpiResult r = ranks(2, "budget2", budget);
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* run : {"budget1", "budget2"}) {
    const auto tokens = losses(run, "tokens");
    ASSERT_FALSE(tokens.empty()) << run;
    EXPECT_EQ(tokens.rbegin()->first, 8) << run;
    EXPECT_EQ(tokens.rbegin()->second, 1536) << run;
  }
  EXPECT_NE(r.output.find("steps 0 -> 8, 1536 tokens"), std::string::npos) << r.output;
}

TEST_F(PretrainDist, RefusesALayoutThatDoesNotFitTheJob) {
  const MpiResult r = ranks(2, "badlayout", "dist.dp=3");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("needs 3 ranks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the job has 2"), std::string::npos) << r.output;
}

// A corrupted shard makes its checkpoint not intact: --resume names the file and
// falls back to the previous checkpoint; with none intact the run is refused.
TEST_F(PretrainDist, ACorruptedShardFallsBackToThePreviousCheckpoint) {
  ASSERT_EQ(ranks(2, "incomplete", "dist.zero=1 --stop-after 10").rc, 0);
  const auto dirs = list_checkpoints((root_ / "incomplete").string());
  ASSERT_EQ(dirs.size(), 2u);  // steps 10 and 5
  const fs::path shard = fs::path(dirs[0]) / "shard_00001_of_00002.safetensors";
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-9, std::ios::end);
    io.put('\x55');
  }
  fs::copy(root_ / "incomplete", root_ / "incomplete_none", fs::copy_options::recursive);
  const MpiResult r = ranks(2, "incomplete", "dist.zero=1 --resume", 7);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from step 5"), std::string::npos) << r.output;

  fs::remove(root_ / "incomplete_none" / "checkpoints" / "step_00000005" / "manifest.json");
  const MpiResult none = ranks(2, "incomplete_none", "dist.zero=1 --resume");
  EXPECT_NE(none.rc, 0);
  EXPECT_NE(none.output.find("no intact checkpoint"), std::string::npos) << none.output;
  EXPECT_NE(none.output.find("shard_00001_of_00002.safetensors: checksum mismatch"), std::string::npos) << none.output;
  EXPECT_NE(none.output.find("manifest.json: missing"), std::string::npos) << none.output;
}

TEST_F(PretrainDist, AFailingRankStopsEveryRankAndIsNamed) {
  const auto t0 = std::chrono::steady_clock::now();
  const MpiResult r = mpi_run(3, std::string(TEDDY_BINARY_DIR) + "/mpi_zero --stage 1 --steps 40 --fail-rank 1 --fail-step 5", 90);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.rc, 124) << "timed out: a rank hung";
  EXPECT_LT(s, 60);
  EXPECT_NE(r.output.find("error on rank 1 of 3: injected failure"), std::string::npos) << r.output;
}

// A rank that stops answering without dying: the others' watchdog (5 s here) ends
// the job instead of waiting forever.
TEST_F(PretrainDist, AHungRankIsCaughtByTheWatchdog) {
  const auto t0 = std::chrono::steady_clock::now();
  const MpiResult r = mpi_run(2, std::string(TEDDY_BINARY_DIR) +
                                     "/mpi_zero --stage 2 --steps 40 --hang-rank 1 --hang-step 3 --timeout 5", 90);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.rc, 124) << "timed out: the job hung";
  EXPECT_LT(s, 60);
  EXPECT_NE(r.output.find("rank 0 of 2: MPI"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("waited more than 5 s"), std::string::npos) << r.output;
}

// The same in `teddy pretrain` itself: rank 1 is stopped (SIGSTOP) mid-run, so it
// neither answers nor dies. Rank 0's watchdog (dist.timeout_s=5) reports the hung
// collective through the library (a HungCall to the job's handler), and the CLI
// prints "teddy: error on rank 0 of 2: MPI ... waited more than 5 s ..." and ends
// every rank of the job with exit code 3, instead of waiting forever.
TEST_F(PretrainDist, AStoppedRankIsReportedByTeddyAndEndsTheJob) {
  const fs::path run = root_ / "stopped";
  const fs::path log = root_ / "stopped.log", rcf = root_ / "stopped.rc";
  const std::string cmd = "sh -c '" + mpirun_env() + mpirun_prefix(2) + kTeddy + args("stopped", 2, 100000) +
                          " dist.timeout_s=5 > " + log.string() + " 2>&1; echo $? > " + rcf.string() + "' &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // Training has started when the first checkpoint is there.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (list_checkpoints(run.string()).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Rank 1: the teddy process of this run whose environment says OMPI_COMM_WORLD_RANK=1.
  pid_t victim = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cl(e.path() / "cmdline"), env(e.path() / "environ");
    const std::string cmdline((std::istreambuf_iterator<char>(cl)), std::istreambuf_iterator<char>());
    const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (cmdline.rfind(kTeddy, 0) == 0 && cmdline.find(run.string()) != std::string::npos &&
        all.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos)
      victim = std::stoi(name);
  }
  auto read_log = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  ASSERT_GT(victim, 0) << "rank 1 not found\n" << read_log();
  ASSERT_FALSE(list_checkpoints(run.string()).empty()) << read_log();
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  deadline = t0 + std::chrono::seconds(60);
  while (!fs::exists(rcf) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const bool ended = fs::exists(rcf);
  if (!ended) {  // leave nothing behind
    kill(victim, SIGKILL);
  }
  ASSERT_TRUE(ended) << "the job did not end within 60 s of stopping rank 1\n" << read_log();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the shell's echo finishes
  int rc = -1;
  std::ifstream(rcf) >> rc;
  const std::string out = read_log();
  std::printf("  stopped rank: the job ended %.1f s after the stop, mpirun exit code %d\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), rc);
  EXPECT_EQ(rc, 3) << "the hang's exit code (dist::kHangExitCode, through MPI_Abort)\n" << out;
  EXPECT_NE(out.find("teddy: error on rank 0 of 2: MPI "), std::string::npos) << out;
  EXPECT_NE(out.find("waited more than 5 s (dist.timeout_s); a peer rank is hung or gone, ending the job"),
            std::string::npos)
      << out;
  if (kill(victim, 0) == 0) {  // the launcher must have ended the stopped rank too
    std::ifstream st("/proc/" + std::to_string(victim) + "/stat");
    std::string pid, comm, state;
    st >> pid >> comm >> state;
    EXPECT_EQ(state, "Z") << "rank 1 outlived the job";
    if (state != "Z") kill(victim, SIGKILL);
  }
}

// Kills rank 1 of a running job with SIGKILL: mpirun must notice and end the other
// rank within 60 s, naming rank 1, and the newest complete checkpoint must load.
TEST_F(PretrainDist, AKilledRankStopsTheJobAndTheLastCheckpointLoads) {
  const fs::path run = root_ / "killed";
  const fs::path log = root_ / "killed.log", pidf = root_ / "killed.pid";
  const std::string cmd = mpirun_env() + mpirun_prefix(2) + kTeddy + args("killed", 2, 100000) + " dist.zero=2 > " +
                          log.string() + " 2>&1 & echo $! > " + pidf.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  pid_t mpirun_pid = 0;
  std::ifstream(pidf) >> mpirun_pid;
  ASSERT_GT(mpirun_pid, 0);
  // Wait for two checkpoints, so one is complete however the kill lands.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (list_checkpoints(run.string()).size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(list_checkpoints(run.string()).size(), 2u);
  // Rank 1: the child of mpirun whose environment says OMPI_COMM_WORLD_RANK=1.
  pid_t victim = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string pid, comm, state;
    pid_t ppid = 0;
    stat >> pid >> comm >> state >> ppid;
    if (ppid != mpirun_pid) continue;
    std::ifstream env(e.path() / "environ");
    std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos) victim = std::stoi(name);
  }
  ASSERT_GT(victim, 0) << "rank 1 not found among mpirun's children";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  bool ended = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    if (kill(mpirun_pid, 0) != 0) {  // gone (reaped by the shell's init)
      ended = true;
      break;
    }
    std::ifstream st("/proc/" + std::to_string(mpirun_pid) + "/stat");
    std::string pid, comm, state;
    st >> pid >> comm >> state;
    if (state == "Z") {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ended) kill(mpirun_pid, SIGKILL);
  ASSERT_TRUE(ended) << "the job did not end within 60 s of killing rank 1";
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Named by the failure report, not by rank 0's start-up lines ("#   rank 1 holds: ...").
  bool named = false;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    named = named || (line.rfind("#", 0) != 0 && line.find("rank 1") != std::string::npos);
  EXPECT_TRUE(named) << out;
  const auto latest = latest_intact_checkpoint(run.string());
  ASSERT_TRUE(latest.has_value());
  const CheckpointInfo info = inspect_checkpoint(*latest);
  Model m(info.model_config);
  AdamW opt(m.layout(), AdamWConfig{});
  EXPECT_NO_THROW(load_checkpoint(*latest, m, &opt));
}


// Stop signals under mpirun: every rank stops after the same step (the flag is
// agreed by a collective each step), each writes its shard of that step's
// checkpoint, the job exits 75, and the resumed job is the uninterrupted one bit for
// bit. SIGUSR1 to mpirun (which forwards it to every rank; SIGTERM would make
// mpirun kill the job), and SIGTERM to rank 1 alone (as when one node is preempted):
// rank 0 never saw a signal and still stops at the same step.
TEST_F(PretrainDist, AStopSignalStopsEveryRankAtTheSameStepWithACheckpoint) {
  constexpr int kTotal = 3000, kRef = 30;
  ASSERT_EQ(ranks(2, "sig_ref", "dist.zero=1 --stop-after " + std::to_string(kRef), kTotal).rc, 0);
  const auto want = losses("sig_ref");
  ASSERT_EQ(want.size(), static_cast<size_t>(kRef));
  for (const bool to_rank1 : {false, true}) {
    const std::string name = to_rank1 ? "sig_rank1" : "sig_mpirun";
    const fs::path run = root_ / name, log = root_ / (name + ".log");
    // mpirun as our own child (exec'd: the pid is mpirun's), so its exit status is ours to read.
    const std::string cmd = "exec " + mpirun_env() + mpirun_prefix(2) + kTeddy + args(name, 2, kTotal) +
                            " dist.zero=1 checkpoint.interval=20 > " + log.string() + " 2>&1";
    std::fflush(nullptr);
    const pid_t mpirun_pid = fork();
    if (mpirun_pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(mpirun_pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (losses(name).size() < 8 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_GE(losses(name).size(), 8u);
    pid_t target = mpirun_pid;
    int sig = SIGUSR1;
    if (to_rank1) {
      sig = SIGTERM;
      target = 0;
      for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string pname = e.path().filename().string();
        if (pname.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(e.path() / "stat");
        std::string pid, comm, state;
        pid_t ppid = 0;
        stat >> pid >> comm >> state >> ppid;
        if (ppid != mpirun_pid) continue;
        std::ifstream env(e.path() / "environ");
        const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
        if (all.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos) target = std::stoi(pname);
      }
      ASSERT_GT(target, 0) << "rank 1 not found among mpirun's children";
    }
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(kill(target, sig), 0);
    int status = 0;
    bool ended = false;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
      if (waitpid(mpirun_pid, &status, WNOHANG) == mpirun_pid) {
        ended = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!ended) {
      kill(mpirun_pid, SIGKILL);
      waitpid(mpirun_pid, &status, 0);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::ifstream in(log);
    const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(ended) << name << ": the job did not end within 60 s of the signal\n" << out;
    ASSERT_TRUE(WIFEXITED(status)) << name << ": mpirun killed by a signal\n" << out;
    EXPECT_EQ(WEXITSTATUS(status), 75) << out;
    const auto dirs = list_checkpoints(run.string());
    ASSERT_FALSE(dirs.empty()) << out;
    const CheckpointInfo info = inspect_checkpoint(dirs.front());  // verifies both shards
    const int saved = static_cast<int>(info.state.step);
    EXPECT_EQ(saved, static_cast<int>(losses(name).size())) << "the newest checkpoint is not the last step run";
    EXPECT_LT(saved, kRef) << out;
    std::ifstream mf(fs::path(dirs.front()) / "manifest.json");
    const auto man = nlohmann::json::parse(mf);
    EXPECT_EQ(man["world_size"], 2);
    const std::string sig_name = to_rank1 ? "SIGTERM" : "SIGUSR1";
    EXPECT_NE(out.find("stopped by " + sig_name + " after step " + std::to_string(saved)), std::string::npos) << out;
    std::printf("  %s: %s, both ranks stopped after step %d, signal to exit %.2f s\n", name.c_str(), sig_name.c_str(),
                saved, secs);
    const MpiResult r = ranks(2, name, "dist.zero=1 checkpoint.interval=20 --resume --stop-after " + std::to_string(kRef), kTotal);
    ASSERT_EQ(r.rc, 0) << r.output;
    const auto got = losses(name);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << name << ": step " << step;
  }
}

}  // namespace
