// `teddy sft` under mpirun, end to end: data parallel SFT follows the single process
// on the same global batch (packed and padded rows, every ZeRO stage, with gradient
// accumulation, fp16 with the engine's loss scaler, a Hugging Face model), its
// checkpoints resume in the other layout (2 ranks -> 1 process, 1 process -> 2 ranks)
// and bit for bit in the same one, --overwrite, and a failing rank ends the job.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "distributed/mpi_run.h"
#include "train/sft_test_util.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/io/hf_export.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

const std::string kTeddy = std::string(TEDDY_BINARY_DIR) + "/teddy";

class SftDist : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("teddy_sft_dist_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    test::make_sft_base(root_);  // root_/base
    test::make_sft_data(root_);  // root_/sft.jsonl
    std::ofstream(root_ / "sft.toml") << "[data]\nval_fraction = 0.15\n[train]\nseq_len = 64\nsteps = 24\nseed = 5\n"
                                         "threads = 1\n[optim]\nlr = 3e-3\nwarmup_steps = 3\n[eval]\ninterval = 8\n"
                                         "[checkpoint]\ninterval = 6\nkeep = 0\n[run]\npeak_gflops = 100\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Global batch 8 rows: micro_batch x grad_accum x ranks.
  static std::string args(const std::string& run, int micro_batch, int grad_accum = 1) {
    return " sft -c " + (root_ / "sft.toml").string() + " model.init=" + (root_ / "base").string() +
           " data.train=" + (root_ / "sft.jsonl").string() + " run.dir=" + (root_ / run).string() +
           " train.micro_batch=" + std::to_string(micro_batch) + " train.grad_accum=" + std::to_string(grad_accum);
  }
  static MpiResult single(const std::string& run, const std::string& extra = "") {
    return run_command("env OMP_NUM_THREADS=1 timeout 120 " + kTeddy + args(run, 8) + " " + extra);
  }
  static MpiResult ranks(int np, const std::string& run, const std::string& extra = "", int grad_accum = 1) {
    return mpi_run(np, kTeddy + args(run, 8 / np / grad_accum, grad_accum) + " " + extra, 120);
  }
  // step -> value of `key` in metrics.jsonl.
  static std::map<int, double> metric(const std::string& run, const char* key = "loss") {
    std::map<int, double> m;
    std::ifstream in(root_ / run / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains(key)) m[j["step"].get<int>()] = j[key].is_boolean() ? j[key].get<bool>() : j[key].get<double>();
    }
    return m;
  }
  // Within 1e-5 relative at every step from `from` on. Why that bound: the ranks see
  // the rows of the one process's step (the same rows, split), so only the order of
  // float additions differs: each rank sums its rows' gradient inside its GEMMs and
  // MPI adds the partial sums. Measured on this task at lr 3e-3: <= 2.6e-8 for the
  // training loss and <= 8.5e-7 for the validation loss over 24 steps. A wrong split
  // (another rank's rows, a row twice) or a per-rank loss normalisation moves the
  // loss by 1e-3 or more. (At lr 1e-2 this tiny task turns chaotic after ~10 steps and
  // amplifies rounding to 1e-4: a bound for equivalence needs a run that is not.)
  static void expect_close(const std::map<int, double>& want, const std::map<int, double>& got, int from = 0) {
    int compared = 0;
    double worst = 0;
    for (const auto& [step, v] : want) {
      if (step < from) continue;
      ASSERT_TRUE(got.count(step)) << "step " << step;
      const double rel = std::fabs(got.at(step) - v) / std::fabs(v);
      EXPECT_LE(rel, 1e-5) << "step " << step;
      worst = std::max(worst, rel);
      ++compared;
    }
    EXPECT_GT(compared, 0);
    std::printf("  largest relative difference %.3g over %d steps\n", worst, compared);
  }
  static fs::path root_;
};
fs::path SftDist::root_;

TEST_F(SftDist, TwoRanksFollowOneProcessOnTheSameGlobalBatch) {
  for (const char* batching : {"pack", "pad"}) {
    SCOPED_TRACE(batching);
    const std::string b = std::string("train.batching=") + batching;
    const MpiResult one = single(std::string("one_") + batching, b);
    ASSERT_EQ(one.rc, 0) << one.output;
    EXPECT_EQ(metric(std::string("one_") + batching).size(), 24u);
    for (int zero : {0, 2}) {
      const std::string run = std::string("two_") + batching + "_zero" + std::to_string(zero);
      const MpiResult two = ranks(2, run, b + " dist.zero=" + std::to_string(zero));
      ASSERT_EQ(two.rc, 0) << two.output;
      // Rank 0 alone prints, including the engine's per-rank state.
      EXPECT_NE(two.output.find("# parallel: dp=2 tp=1 pp=1 cp=1 zero=" + std::to_string(zero)), std::string::npos)
          << two.output;
      EXPECT_NE(two.output.find("24 steps of 8 rows"), std::string::npos) << two.output;
      EXPECT_EQ(two.grep("# parallel:").size(), two.grep("# parallel:").find('\n') + 1) << "printed by more than one rank";
      expect_close(metric(std::string("one_") + batching), metric(run));
      expect_close(metric(std::string("one_") + batching, "val_loss"), metric(run, "val_loss"));
      // Loss tokens count the whole global batch; so do row positions, which equal the
      // one process's when rows are packed (padded micro-batches are as wide as their
      // own longest example, so smaller ones pad less).
      EXPECT_EQ(metric(std::string("one_") + batching, "loss_tokens"), metric(run, "loss_tokens"));
      if (std::string(batching) == "pack") {
        EXPECT_EQ(metric("one_pack", "tokens"), metric(run, "tokens"));
      }
    }
  }
  // 2 ranks x micro_batch 2 x grad_accum 2, ZeRO-3: the same global batch once more.
  const MpiResult acc = ranks(2, "two_accum_zero3", "dist.zero=3", 2);
  ASSERT_EQ(acc.rc, 0) << acc.output;
  expect_close(metric("one_pack"), metric("two_accum_zero3"));
}

// LoRA through the same engine: 2 ranks (ZeRO-1 and ZeRO-3, the adapters sharded and
// gathered per block) follow the one process on the same global batch, as above, with
// dropout 0 and with dropout 0.2.
TEST_F(SftDist, LoraTwoRanksFollowOneProcess) {
  const std::string l = "lora.r=4 lora.alpha=8";
  const MpiResult one = single("lora_one", l);
  ASSERT_EQ(one.rc, 0) << one.output;
  EXPECT_NE(one.output.find("# lora: r 4"), std::string::npos) << one.output;
  for (int zero : {1, 3}) {
    const std::string run = "lora_two_zero" + std::to_string(zero);
    const MpiResult two = ranks(2, run, l + " dist.zero=" + std::to_string(zero));
    ASSERT_EQ(two.rc, 0) << two.output;
    expect_close(metric("lora_one"), metric(run));
  }
  // With dropout too: the masks follow each row's place in the global batch
  // (Model::set_lora_dropout_rows), not the rank or the micro-batch, so 2 ranks and
  // 2 ranks x 2 micro-batches draw the one process's masks.
  const std::string ld = l + " lora.dropout=0.2";
  const MpiResult oned = single("lora_drop_one", ld);
  ASSERT_EQ(oned.rc, 0) << oned.output;
  const MpiResult twod = ranks(2, "lora_drop_two", ld + " dist.zero=1");
  ASSERT_EQ(twod.rc, 0) << twod.output;
  expect_close(metric("lora_drop_one"), metric("lora_drop_two"));
  const MpiResult accd = ranks(2, "lora_drop_accum", ld, 2);
  ASSERT_EQ(accd.rc, 0) << accd.output;
  expect_close(metric("lora_drop_one"), metric("lora_drop_accum"));
}

// Checkpoints resume in the other layout: written by 2 ranks (each its shard), resumed
// in one process; written by one process (one shard), resumed by 2 ranks at ZeRO-1;
// and by the same 2 ranks bit for bit as if never interrupted.
TEST_F(SftDist, CheckpointsResumeAcrossLayouts) {
  ASSERT_EQ(single("ref").rc, 0);
  ASSERT_EQ(ranks(2, "ref2").rc, 0);
  const MpiResult a = ranks(2, "from2", "--stop-after 12");
  ASSERT_EQ(a.rc, 0) << a.output;
  const fs::path ckpt = root_ / "from2" / "checkpoints" / "step_00000012";
  ASSERT_TRUE(fs::exists(ckpt / "shard_00001_of_00002.safetensors")) << a.output;
  fs::copy(root_ / "from2", root_ / "from2_again", fs::copy_options::recursive);

  const MpiResult to1 = single("from2", "--resume");
  ASSERT_EQ(to1.rc, 0) << to1.output;
  EXPECT_NE(to1.output.find("resumed from step 12"), std::string::npos) << to1.output;
  expect_close(metric("ref"), metric("from2"), 13);

  const MpiResult again = ranks(2, "from2_again", "--resume");
  ASSERT_EQ(again.rc, 0) << again.output;
  const auto want = metric("ref2"), got = metric("from2_again");
  for (int step = 13; step <= 24; ++step) {
    ASSERT_TRUE(got.count(step)) << step;
    EXPECT_EQ(got.at(step), want.at(step)) << "step " << step << ": not bit for bit";
  }

  ASSERT_EQ(single("from1", "--stop-after 12").rc, 0);
  ASSERT_TRUE(fs::exists(root_ / "from1" / "checkpoints" / "step_00000012" / "shard_00000_of_00001.safetensors"));
  const MpiResult to2 = ranks(2, "from1", "dist.zero=1 --resume");
  ASSERT_EQ(to2.rc, 0) << to2.output;
  EXPECT_NE(to2.output.find("resumed from step 12"), std::string::npos) << to2.output;
  expect_close(metric("ref"), metric("from1"), 13);
}

// fp16 SFT under mpirun: the loss scaler lives in the step engine, so every rank
// scales, skips and grows alike. Started at 2^26 with growth every 3 clean steps, the
// first steps overflow (skipped, the scale halves): each step's scale, skip flag and
// running skip count equal the one process's exactly (an overflow is decided by the
// global gradient norm, an all-reduce every rank shares). The losses agree within the
// same 1e-5 relative as fp32, for the same reason (expect_close); fp16 storage can turn
// a last-bit difference into a 2^-11 one on a few stored activations, which the mean
// over the batch's answer tokens dilutes (pretraining measured <= 1.9e-6 for this).
TEST_F(SftDist, Fp16RunsUnderMpirunWithTheOneProcessScalerTrace) {
  const std::string fp16 = "train.precision=fp16 train.loss_scale=67108864 train.loss_scale_growth_interval=3";
  const MpiResult one = single("fp16_one", fp16);
  ASSERT_EQ(one.rc, 0) << one.output;
  const MpiResult two = ranks(2, "fp16_two", fp16 + " dist.zero=1");
  ASSERT_EQ(two.rc, 0) << two.output;
  EXPECT_EQ(metric("fp16_one", "loss_scale"), metric("fp16_two", "loss_scale"));
  EXPECT_EQ(metric("fp16_one", "skipped"), metric("fp16_two", "skipped"));
  EXPECT_EQ(metric("fp16_one", "skipped_steps"), metric("fp16_two", "skipped_steps"));
  const auto skipped = metric("fp16_two", "skipped_steps");
  ASSERT_FALSE(skipped.empty());
  EXPECT_GE(skipped.rbegin()->second, 1) << "no overflow exercised";
  EXPECT_LE(skipped.rbegin()->second, 10) << "no step applied";
  expect_close(metric("fp16_one"), metric("fp16_two"));
  EXPECT_NE(two.output.find(one.grep("fp16 loss scaling: ")), std::string::npos) << two.output;
}

// `teddy sft --model hf:DIR` at 2 ranks: rank 0 imports the Hugging Face directory into
// run.dir/hf_base (and says so, once), the other rank waits and reuses it, and the run
// follows the one process's from the same directory within the 1e-5 relative of
// expect_close (the same weights on every rank, the same global batch: only the order
// of float additions differs, as in TwoRanksFollowOneProcessOnTheSameGlobalBatch).
TEST_F(SftDist, AnHfModelRunsAtTwoRanks) {
  const fs::path hf = root_ / "hf_model";
  if (!fs::exists(hf)) export_hf((root_ / "base").string(), hf.string(), {});
  const std::string model = " --model hf:" + hf.string();
  const MpiResult one = single("hf_one", model);
  ASSERT_EQ(one.rc, 0) << one.output;
  const MpiResult two = ranks(2, "hf_two", "dist.zero=2" + model);
  ASSERT_EQ(two.rc, 0) << two.output;
  const std::string note = "# model.init hf:" + hf.string() + ": imported into " + (root_ / "hf_two" / "hf_base").string();
  EXPECT_EQ(two.grep("# model.init hf:"), note + "\n") << "rank 0 alone imports and says so";
  EXPECT_TRUE(fs::exists(root_ / "hf_two" / "hf_base" / "hf_extras.json"));
  EXPECT_NE(two.output.find("# init: " + (root_ / "hf_two" / "hf_base").string()), std::string::npos) << two.output;
  EXPECT_EQ(metric("hf_one").size(), 24u);
  expect_close(metric("hf_one"), metric("hf_two"));
  expect_close(metric("hf_one", "val_loss"), metric("hf_two", "val_loss"));
  // Resumed at 2 ranks from its checkpoints: the import is reused, not redone.
  const MpiResult again = ranks(2, "hf_two", "dist.zero=2 --resume" + model);
  ASSERT_EQ(again.rc, 0) << again.output;
  EXPECT_NE(again.output.find("reusing the import in"), std::string::npos) << again.output;
}

// --overwrite, as `teddy pretrain` has it: a fresh run (no --resume) in a run.dir with
// an earlier run's checkpoints is refused on every rank, naming the way out;
// --overwrite deletes them and starts over; it excludes --resume.
TEST_F(SftDist, AFreshRunRefusesEarlierCheckpointsUnlessOverwrite) {
  ASSERT_EQ(single("ow", "--stop-after 6").rc, 0);
  const MpiResult refused = ranks(2, "ow");
  EXPECT_NE(refused.rc, 0);
  EXPECT_NE(refused.rc, 124) << "timed out: a rank hung";
  EXPECT_NE(refused.output.find("teddy: error on rank"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("holds checkpoints of an earlier run"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("--overwrite to delete them"), std::string::npos) << refused.output;
  const MpiResult one = single("ow");
  EXPECT_EQ(one.rc, 1) << one.output;
  EXPECT_NE(one.output.find("teddy: error: " + (root_ / "ow").string() + ": holds checkpoints"), std::string::npos)
      << one.output;
  const MpiResult both = single("ow", "--overwrite --resume");
  EXPECT_NE(both.rc, 0);
  EXPECT_NE(both.output.find("excludes"), std::string::npos) << both.output;
  const MpiResult over = ranks(2, "ow", "--overwrite");
  ASSERT_EQ(over.rc, 0) << over.output;
  EXPECT_EQ(metric("ow").size(), 24u);
  EXPECT_EQ(metric("ow").begin()->first, 1);  // a fresh metrics file
  EXPECT_FALSE(fs::exists(root_ / "ow" / "checkpoints" / "step_00000006" / "shard_00000_of_00001.safetensors"))
      << "the earlier run's one-process checkpoint is gone";
}

// An error on the ranks (here every rank's: no such data file) ends the whole job
// with the failing rank named, instead of leaving a rank waiting in a collective.
TEST_F(SftDist, AnErrorEndsEveryRank) {
  const MpiResult r = ranks(2, "bad", "data.train=" + (root_ / "missing.jsonl").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.rc, 124) << "timed out: a rank hung";
  EXPECT_NE(r.output.find("teddy: error on rank"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing.jsonl"), std::string::npos) << r.output;
}

}  // namespace
