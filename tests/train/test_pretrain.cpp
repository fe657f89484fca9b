// The pretraining loop end to end on a tiny dataset: exact resume, checkpoints that
// survive a SIGKILL mid-write, and config errors that name the key.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/core/stop_signal.h"
#include "teddy/data/prepare.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/train/pretrainer.h"
#include "train/tensorboard_check.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

// The shard a one-process run writes (a world of one writes one shard).
constexpr const char* kOneShard = "shard_00000_of_00001.safetensors";

// A small byte-level dataset: two text sources of generated "documents".
std::string make_dataset(const fs::path& root) {
  const fs::path src = root / "src";
  fs::create_directories(src / "a");
  fs::create_directories(src / "b");
  std::mt19937 rng(5);
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
  for (int f = 0; f < 6; ++f) {
    for (const char* sub : {"a", "b"}) {
      std::ofstream out(src / sub / ("doc" + std::to_string(f) + ".txt"));
      for (int w = 0; w < 600; ++w) out << words[rng() % 12] << (w % 13 == 12 ? ".\n" : " ");
    }
  }
  PrepareConfig pc;
  SourceSpec a;
  a.name = "prose";
  a.kind = SourceKind::text;
  a.paths = {(src / "a").string()};
  a.weight = 0.7;
  SourceSpec b = a;
  b.name = "other";
  b.paths = {(src / "b").string()};
  b.weight = 0.3;
  pc.sources = {a, b};
  pc.tokenizer = "bytes";
  pc.out_dir = (root / "dataset").string();
  pc.val_fraction = 0.2;
  pc.overwrite = true;
  prepare_dataset(pc);
  return pc.out_dir;
}

PretrainConfig tiny_config(const std::string& dataset, const std::string& run_dir) {
  PretrainConfig c = PretrainConfig::parse(R"(
[model]
preset = "gpt2-tiny"
[train]
micro_batch = 4
seq_len = 32
grad_accum = 2
steps = 20
seed = 7
threads = 2
[optim]
lr = 3e-3
warmup_steps = 4
[eval]
interval = 10
batches = 2
[checkpoint]
interval = 10
keep = 5
[run]
peak_gflops = 100
)", "test.toml", {"data.dataset=" + dataset, "run.dir=" + run_dir});
  return c;
}

class PretrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("teddy_pretrain_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    dataset_ = make_dataset(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::string dataset_;
};

}  // namespace

TEST_F(PretrainTest, LossFallsAndResumeIsBitExact) {
  const std::string run_a = (root_ / "run_a").string(), run_b = (root_ / "run_b").string();
  Pretrainer a(tiny_config(dataset_, run_a), Resume::no);
  a.run({});
  const std::vector<double> full = a.step_losses();
  ASSERT_EQ(full.size(), 20u);
  EXPECT_LT(full.back(), full.front() - 0.5) << "training loss should fall on this easy data";

  std::vector<double> resumed;
  {
    Pretrainer b(tiny_config(dataset_, run_b), Resume::no);
    b.run({}, 10);
    resumed = b.step_losses();
  }
  ASSERT_EQ(resumed.size(), 10u);
  {
    Pretrainer b2(tiny_config(dataset_, run_b), Resume::if_any);
    EXPECT_EQ(b2.start_step(), 10);
    b2.run({});
    resumed.insert(resumed.end(), b2.step_losses().begin(), b2.step_losses().end());
  }
  ASSERT_EQ(resumed.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(full[i], resumed[i]) << "step " << i + 1 << " differs after resume";

  // Final parameters match bit for bit too.
  const auto ca = inspect_checkpoint(*latest_intact_checkpoint(run_a));
  const auto cb = inspect_checkpoint(*latest_intact_checkpoint(run_b));
  EXPECT_EQ(ca.state.step, 20);
  EXPECT_EQ(cb.state.step, 20);
  // One process writes one shard: parameters, AdamW m and v over the whole flat buffer.
  std::ifstream fa(fs::path(ca.dir) / kOneShard, std::ios::binary), fb(fs::path(cb.dir) / kOneShard, std::ios::binary);
  const std::string ba((std::istreambuf_iterator<char>(fa)), {}), bb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_FALSE(ba.empty());
  EXPECT_TRUE(ba == bb) << "parameters and optimizer state after 20 straight steps differ from 10 + resume 10";

  // metrics.jsonl of the resumed run has one line per step (no duplicates from the resume).
  std::ifstream m(fs::path(run_b) / "metrics.jsonl");
  int step_lines = 0;
  for (std::string line; std::getline(m, line);)
    if (line.find("\"loss\"") != std::string::npos) ++step_lines;
  EXPECT_EQ(step_lines, 20);
  // Both runs' TensorBoard files say what metrics.jsonl says; run_b's two files (the
  // resume's starts at step 11) give each step once.
  test::expect_tensorboard_matches_metrics(run_a);
  test::expect_tensorboard_matches_metrics(run_b);
}

TEST_F(PretrainTest, KilledCheckpointWriteLeavesPreviousLoadable) {
  const std::string run = (root_ / "run").string();
  {
    Pretrainer p(tiny_config(dataset_, run), Resume::no);
    p.run({}, 10);  // writes step_00000010
  }
  ASSERT_TRUE(latest_intact_checkpoint(run).has_value());
  // A process killed after writing the shard of the next checkpoint, before its
  // manifest.json. The child only writes files (no OpenMP), so fork is safe.
  {
    PretrainConfig c = tiny_config(dataset_, run);
    c.finalize(257);
    Model model(c.model);
    AdamW opt(model.layout(), AdamWConfig{});
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      CheckpointState st;
      st.step = 20;
      save_checkpoint(run, model, opt, st, 5, [](const std::string& f) {
        if (f == kOneShard) std::raise(SIGKILL);
      });
      ::_exit(0);  // not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child was not killed mid-write";
  }
  bool saw_partial = false;
  for (const auto& e : fs::directory_iterator(fs::path(run) / "checkpoints"))
    if (e.path().filename().string().rfind("step_00000020.tmp", 0) == 0) saw_partial = true;
  EXPECT_TRUE(saw_partial) << "the killed write should have left its temporary directory behind";
  const auto latest = latest_intact_checkpoint(run);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(fs::path(*latest).filename().string(), "step_00000010");

  // A complete checkpoint whose file was corrupted afterwards is skipped, with a reason.
  {
    PretrainConfig c = tiny_config(dataset_, run);
    c.finalize(257);
    Model model(c.model);
    AdamW opt(model.layout(), AdamWConfig{});
    CheckpointState st;
    st.step = 30;
    const std::string dir = save_checkpoint(run, model, opt, st, 5);
    std::fstream f(fs::path(dir) / kOneShard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  std::vector<std::string> skipped;
  const auto again = latest_intact_checkpoint(run, &skipped);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(fs::path(*again).filename().string(), "step_00000010");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("checksum"), std::string::npos) << skipped[0];

  // --resume picks the intact one and continues to the end; the killed writer's
  // temporary directory is removed at the start, and the start report says so.
  Pretrainer r(tiny_config(dataset_, run), Resume::if_any);
  EXPECT_EQ(r.start_step(), 10);
  for (const auto& e : fs::directory_iterator(fs::path(run) / "checkpoints"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path() << " was left behind";
  std::string start_text;
  r.run([&](const PretrainEvent& e) {
    if (e.kind == PretrainEvent::Kind::start) start_text = e.text;
  });
  EXPECT_EQ(r.step_losses().size(), 10u);
  EXPECT_NE(start_text.find("# removed 1 temporary checkpoint directory of writers that are gone: step_00000020.tmp-"),
            std::string::npos)
      << start_text;
  // The fallback from step 30 to step 10 is named, with the file and the reason.
  EXPECT_NE(start_text.find("# --resume: skipped damaged checkpoint " + (fs::path(run) / "checkpoints" / "step_00000030").string() +
                            ": " + (fs::path(run) / "checkpoints" / "step_00000030" / kOneShard).string() + ": checksum mismatch"),
            std::string::npos)
      << start_text;
}

// A stop signal (Slurm's SIGTERM or --signal=USR1, Ctrl-C) ends the run after the step
// it is in with a checkpoint of that step, and the resumed run is the uninterrupted
// one bit for bit. The signal goes through the real handler (raise), at step 7 of 20,
// between the checkpoints of steps 10 and 20.
TEST_F(PretrainTest, AStopSignalSavesTheStepAndResumesBitExact) {
  const std::string run_a = (root_ / "run_a").string(), run_b = (root_ / "run_b").string();
  Pretrainer a(tiny_config(dataset_, run_a), Resume::no);
  a.run({});
  std::vector<double> resumed;
  install_stop_handlers({SIGTERM, SIGINT, SIGUSR1});
  {
    Pretrainer b(tiny_config(dataset_, run_b), Resume::no);
    int end_signal = -1;
    std::string end_checkpoint;
    const TrainResult res = b.run([&](const PretrainEvent& e) {
      if (e.kind == PretrainEvent::Kind::step && e.step == 7) std::raise(SIGUSR1);
      if (e.kind == PretrainEvent::Kind::end) end_signal = e.stop_signal, end_checkpoint = e.checkpoint;
    });
    EXPECT_EQ(res.stop_signal, SIGUSR1);
    EXPECT_EQ(res.step, 7);
    EXPECT_EQ(end_signal, SIGUSR1);
    EXPECT_EQ(res.checkpoint, checkpoint_dir(run_b, 7));
    EXPECT_EQ(end_checkpoint, res.checkpoint);
    resumed = b.step_losses();
  }
  ASSERT_EQ(resumed.size(), 7u);
  EXPECT_EQ(inspect_checkpoint(checkpoint_dir(run_b, 7)).state.step, 7);
  clear_stop_request();
  {
    Pretrainer b2(tiny_config(dataset_, run_b), Resume::if_any);
    EXPECT_EQ(b2.start_step(), 7);
    const TrainResult res = b2.run({});
    EXPECT_EQ(res.stop_signal, 0);
    EXPECT_EQ(res.step, 20);
    resumed.insert(resumed.end(), b2.step_losses().begin(), b2.step_losses().end());
  }
  restore_default_stop_handlers();
  ASSERT_EQ(resumed.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(a.step_losses()[i], resumed[i]) << "step " << i + 1 << " differs after resume";
  std::ifstream fa(checkpoint_dir(run_a, 20) + "/" + kOneShard, std::ios::binary),
      fb(checkpoint_dir(run_b, 20) + "/" + kOneShard, std::ios::binary);
  const std::string ba((std::istreambuf_iterator<char>(fa)), {}), bb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_FALSE(ba.empty());
  EXPECT_TRUE(ba == bb) << "parameters and optimizer state after 20 straight steps differ from stopped at 7 + resumed";
}

// A requeued job runs the same `--resume` command every time, also when it was killed
// before its first checkpoint: then it starts from scratch and says so (the same run
// as without --resume); --resume=require refuses.
TEST_F(PretrainTest, ResumeWithoutCheckpointStartsFresh) {
  const std::string run_a = (root_ / "run_a").string(), run_b = (root_ / "run_b").string();
  EXPECT_THROW(Pretrainer(tiny_config(dataset_, run_b), Resume::require), Error);
  Pretrainer a(tiny_config(dataset_, run_a), Resume::no);
  a.run({}, 3);
  Pretrainer b(tiny_config(dataset_, run_b), Resume::if_any);
  EXPECT_EQ(b.start_step(), 0);
  std::string start_text;
  b.run([&](const PretrainEvent& e) {
    if (e.kind == PretrainEvent::Kind::start) start_text = e.text;
  }, 3);
  EXPECT_NE(start_text.find("--resume: no checkpoint in " + run_b + " yet, starting from scratch"), std::string::npos)
      << start_text;
  EXPECT_EQ(a.step_losses(), b.step_losses());
  // Checkpoints that exist but are all broken are not a fresh start: that would throw the run away.
  for (const auto& e : fs::directory_iterator(fs::path(run_b) / "checkpoints"))
    fs::remove(e.path() / "manifest.json");
  EXPECT_THROW(Pretrainer(tiny_config(dataset_, run_b), Resume::if_any), Error);
}

// Only temporary directories whose writer is provably gone are removed: this host's,
// with a pid that no longer runs (also the older name without a host).
TEST_F(PretrainTest, StaleCheckpointTempsOfDeadWritersAreRemoved) {
  const std::string run = (root_ / "run").string();
  const std::string mine = checkpoint_temp_dir(run, 7);  // ".../step_00000007.tmp-<our pid>@<host>"
  const std::string host = mine.substr(mine.find('@') + 1);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // its pid now names a writer that is gone
  const fs::path ck = fs::path(run) / "checkpoints";
  const std::string dead = std::to_string(child);
  const fs::path dead_here = ck / ("step_00000005.tmp-" + dead + "@" + host), dead_legacy = ck / ("step_00000006.tmp-" + dead),
                 other_host = ck / ("step_00000008.tmp-" + dead + "@" + host + "-elsewhere"), alive = mine;
  for (const fs::path& d : {dead_here, dead_legacy, other_host, alive}) {
    fs::create_directories(d);
    std::ofstream(d / "model.safetensors") << "partial";
  }
  const StaleTemps st = remove_stale_checkpoint_temps(run);
  EXPECT_FALSE(fs::exists(dead_here));
  EXPECT_FALSE(fs::exists(dead_legacy));
  EXPECT_TRUE(fs::exists(other_host));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_EQ(st.removed.size(), 2u);
  ASSERT_EQ(st.other_hosts.size(), 1u);
  EXPECT_TRUE(st.failed.empty());
  const std::string text = st.summary();
  EXPECT_NE(text.find("removed 2 temporary checkpoint directories"), std::string::npos) << text;
  EXPECT_NE(text.find("step_00000008.tmp-"), std::string::npos) << text;
  EXPECT_TRUE(remove_stale_checkpoint_temps((root_ / "no_such_run").string()).summary().empty());
}

// No litter at the end of a run either: a temporary checkpoint directory of a writer
// that is gone, appearing while the run trains (here made at step 3, as a save killed
// in another process would leave it), is removed when the run ends and the end report
// says so in one line.
TEST_F(PretrainTest, TheEndOfARunRemovesDeadWritersTemporaries) {
  const std::string run = (root_ / "run").string();
  const std::string mine = checkpoint_temp_dir(run, 7);
  const std::string host = mine.substr(mine.find('@') + 1);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const fs::path dead = fs::path(run) / "checkpoints" / ("step_00000003.tmp-" + std::to_string(child) + "@" + host);
  Pretrainer p(tiny_config(dataset_, run), Resume::no);
  std::string end_text;
  p.run([&](const PretrainEvent& e) {
    if (e.kind == PretrainEvent::Kind::step && e.step == 3) {
      fs::create_directories(dead);
      std::ofstream(dead / "shard_00000_of_00001.safetensors") << "partial";
    }
    if (e.kind == PretrainEvent::Kind::end) end_text = e.text;
  });
  EXPECT_FALSE(fs::exists(dead)) << "left at the end of the run";
  EXPECT_NE(end_text.find("# removed 1 temporary checkpoint directory of writers that are gone: " + dead.filename().string()),
            std::string::npos)
      << end_text;
}

// Lowering the micro-batch to fit memory must not change the run: micro_batch 4 x
// grad_accum 2 trains on the rows of micro_batch 8 (the loader draws a step's rows
// from the global batch), so the losses agree up to summation order.
TEST_F(PretrainTest, MicroBatchSplitDoesNotChangeTheRun) {
  Pretrainer a(tiny_config(dataset_, (root_ / "a").string()), Resume::no);  // micro_batch 4 x grad_accum 2
  PretrainConfig c = tiny_config(dataset_, (root_ / "b").string());
  c.micro_batch = 8;
  c.grad_accum = 1;
  Pretrainer b(c, Resume::no);
  a.run({});
  b.run({});
  // The same rows, so only summation order differs, but over 20 steps: two trajectories,
  // along which Adam amplifies rounding (an element with a near-zero gradient can end
  // anywhere in its trust region), so no bound from eps holds (docs/TESTING.md, rule 6;
  // each step's own math is checked at its point in test_vs_pytorch and
  // test_train_step). The bound separates the two scales this test tells apart:
  // rounding (<= 6.3e-9 measured over every OpenBLAS kernel family and thread count,
  // docs/TESTING.md) and drawing other rows (the old loader: 1e-3 to 8e-3); 1e-5 is
  // ~1000x from each.
  ASSERT_EQ(a.step_losses().size(), b.step_losses().size());
  double worst = 0;
  for (size_t i = 0; i < a.step_losses().size(); ++i) {
    EXPECT_NEAR(a.step_losses()[i], b.step_losses()[i], 1e-5 * b.step_losses()[i]) << "step " << i + 1;
    worst = std::max(worst, std::fabs(a.step_losses()[i] - b.step_losses()[i]) / b.step_losses()[i]);
  }
  std::printf("  micro-batch split: largest relative step-loss difference %.3g\n", worst);
}

TEST_F(PretrainTest, IncompatibleCheckpointIsRefused) {
  const std::string run = (root_ / "run").string();
  {
    Pretrainer p(tiny_config(dataset_, run), Resume::no);
    p.run({}, 10);
  }
  PretrainConfig other = tiny_config(dataset_, run);
  other.model.d_model = 64;
  try {
    Pretrainer r(other, Resume::if_any);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("d_model"), std::string::npos) << e.what();
  }
}

TEST(PretrainConfig, ErrorsNameTheKey) {
  auto msg = [](const std::string& toml, std::vector<std::string> ov = {}) -> std::string {
    try {
      PretrainConfig c = PretrainConfig::parse(toml, "run.toml", ov);
      c.finalize(257);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(msg("[train]\nstpes = 3\n").find("unknown key \"train.stpes\""), std::string::npos);
  EXPECT_NE(msg("[train]\nsteps = \"many\"\n").find("train.steps"), std::string::npos);
  EXPECT_NE(msg("[optim]\nlr = -1.0\n").find("optim.lr"), std::string::npos);
  EXPECT_NE(msg("[train]\nseq_len = 4096\n").find("train.seq_len"), std::string::npos);
  EXPECT_NE(msg("[model]\npreset = \"gpt5\"\n").find("gpt5"), std::string::npos);
  EXPECT_NE(msg("[model]\nn_head = 5\n").find("n_head"), std::string::npos);
  EXPECT_NE(msg("[train\n").find("run.toml:1"), std::string::npos);
  EXPECT_NE(msg("", {"train.micro_batch=0"}).find("train.micro_batch"), std::string::npos);
  EXPECT_NE(msg("", {"nodot=1"}).find("section.key"), std::string::npos);
  EXPECT_NE(msg("[train]\nprecision = \"fp8\"\n").find("train.precision"), std::string::npos);
  EXPECT_NE(msg("", {"train.precision=half"}).find("train.precision"), std::string::npos);
  EXPECT_NE(msg("", {"train.gemm=mkl"}).find("train.gemm: unknown GEMM library 'mkl'"), std::string::npos);
  EXPECT_NE(msg("", {"train.loss_scale=3.0"}).find("train.loss_scale"), std::string::npos);
  EXPECT_NE(msg("", {"train.loss_scale_growth_interval=0"}).find("train.loss_scale_growth_interval"), std::string::npos);
  // Overrides are typed by TOML syntax and win over the file.
  PretrainConfig c = PretrainConfig::parse("[train]\nsteps = 5\n[optim]\nwarmup_steps = 2\n", "run.toml", {"train.steps=9", "optim.lr=2e-3", "run.dir=/tmp/x"});
  EXPECT_EQ(c.steps, 9);
  EXPECT_FLOAT_EQ(c.lr, 2e-3f);
  EXPECT_EQ(c.run_dir, "/tmp/x");
  // The resolved config round-trips.
  c.finalize(257);
  PretrainConfig d = PretrainConfig::parse(c.to_toml(), "resolved.toml");
  d.finalize(257);
  EXPECT_EQ(d.to_toml(), c.to_toml());
  // The switches of imported models (Qwen2's q/k/v biases, Llama 3.1's RoPE scaling, a
  // tied head) round-trip too, and model.family does not reset what the file sets.
  PretrainConfig q = PretrainConfig::parse(
      "[model]\npreset = \"llama-tiny\"\nfamily = \"llama\"\ntie_embeddings = true\nqkv_bias = true\n"
      "rope_scaling = \"llama3\"\nrope_factor = 32.0\nrope_original_max_position_embeddings = 64\n"
      "[train]\nseq_len = 32\n",
      "run.toml");
  EXPECT_TRUE(q.model.tie_embeddings);
  EXPECT_TRUE(q.model.qkv_bias);
  EXPECT_EQ(q.model.rope_scaling.type, RopeScaling::Type::llama3);
  EXPECT_EQ(q.model.rope_scaling.factor, 32.0f);
  EXPECT_EQ(q.model.rope_scaling.original_max_position_embeddings, 64);
  q.finalize(257);
  PretrainConfig q2 = PretrainConfig::parse(q.to_toml(), "resolved.toml");
  q2.finalize(257);
  EXPECT_EQ(q2.to_toml(), q.to_toml());
  EXPECT_TRUE(q2.model.rope_scaling == q.model.rope_scaling);
  EXPECT_NE(msg("", {"model.rope_scaling=\"yarn\""}).find("model.rope_scaling"), std::string::npos);
}

// Memory accounting: what the run reports is what it holds, and recomputation
// changes only the activation arena, not a single loss bit.
TEST_F(PretrainTest, MemoryReportIsConsistentAndRecomputeIsExact) {
  std::vector<double> losses[2];
  size_t acts[2] = {0, 0};
  const char* modes[2] = {"none", "block"};
  for (int i = 0; i < 2; ++i) {
    PretrainConfig c = tiny_config(dataset_, (root_ / modes[i]).string());
    c.steps = 4;
    c.warmup_steps = 1;
    c.recompute = modes[i];
    Pretrainer p(c, Resume::no);
    const PretrainMemory mem = p.memory();
    const ModelConfig& mc = p.config().model;
    const size_t flat = make_param_layout(mc).total * sizeof(float);
    EXPECT_EQ(mem.params, flat);
    EXPECT_EQ(mem.grads, flat);
    EXPECT_EQ(mem.optimizer, 2 * flat);  // AdamW m and v, fp32
    EXPECT_EQ(mem.activations,
              Model::activation_bytes_for(mc, c.micro_batch, c.seq_len, recompute_from_name(modes[i])));
    acts[i] = mem.activations;
    std::string start, end;
    p.run([&](const PretrainEvent& e) {
      if (e.kind == PretrainEvent::Kind::start) start = e.text;
      if (e.kind == PretrainEvent::Kind::end) end = e.text;
    });
    EXPECT_NE(start.find(std::string("(recompute ") + modes[i] + ", precision fp32; saved by the layers "),
              std::string::npos)
        << start;
    EXPECT_LT(p.memory().saved_activations, p.memory().activations);
    EXPECT_NE(end.find("peak resident memory"), std::string::npos) << end;
    EXPECT_EQ(p.memory().activations, acts[i]);  // the arena never grew during the run
    losses[i] = p.step_losses();
  }
  EXPECT_LT(acts[1], acts[0]);
  ASSERT_EQ(losses[0].size(), 4u);
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_THROW(PretrainConfig::parse("[train]\nrecompute = \"sometimes\"\n", "t.toml").validate(), ConfigError);
}

// Mixed precision through the whole loop: bf16 and fp16 runs train, stay near fp32,
// and resume bit-exactly (fp32 master weights and AdamW state in the checkpoint, the
// fp16 loss scaler's scale, clean streak and skip count in the manifest). The fp16 run
// starts at a 2^40 loss scale, so its first steps overflow, are skipped and halve the
// scale, and a growth interval of 3 keeps the scale moving across the resume.
TEST_F(PretrainTest, MixedPrecisionTrainsAndResumesBitExact) {
  const float kFp16StartScale = 67108864.0f;  // 2^26: here the first ~4 steps overflow
  auto config = [&](const std::string& precision, const std::string& dir) {
    PretrainConfig c = tiny_config(dataset_, (root_ / dir).string());
    c.precision = precision;
    if (precision == "fp16") {
      c.loss_scale = kFp16StartScale;
      c.loss_scale_growth_interval = 3;
    }
    return c;
  };
  Pretrainer f32(config("fp32", "fp32"), Resume::no);
  f32.run({});
  for (const std::string prec : {"bf16", "fp16"}) {
    SCOPED_TRACE(prec);
    Pretrainer a(config(prec, prec + "_a"), Resume::no);
    EXPECT_EQ(a.memory().activations,
              Model::activation_bytes_for(a.config().model, 4, 32, Recompute::none, precision_from_name(prec)));
    EXPECT_GT(a.memory().weight_scratch, 0u);
    std::string start;
    a.run([&](const PretrainEvent& e) {
      if (e.kind == PretrainEvent::Kind::start) start = e.text;
    });
    EXPECT_NE(start.find("precision " + prec + "; saved by the layers"), std::string::npos) << start;
    const std::vector<double> full = a.step_losses();
    ASSERT_EQ(full.size(), 20u);
    if (prec == "bf16") {  // close to fp32 at every step, and not fp32 itself (fp16 skips its first steps)
      double max_diff = 0;
      for (size_t i = 0; i < full.size(); ++i) max_diff = std::max(max_diff, std::abs(full[i] - f32.step_losses()[i]));
      std::printf("  bf16 vs fp32: largest step-loss difference over 20 steps %.4f\n", max_diff);
      // Not derived: a 20-step trajectory, along which Adam amplifies bf16's rounding as it
      // does fp32's (test_precision bounds one step at a fixed point from u_bf16 and the
      // rounding places). A sanity bound: 0.01 is 0.2% of the loss (~5), 50x the largest
      // difference seen over every OpenBLAS kernel family and thread count (2e-4,
      // docs/TESTING.md); a bf16 path that does not train like fp32 is off by far more.
      EXPECT_LT(max_diff, 0.01);
      EXPECT_GT(max_diff, 0.0);
    }

    std::vector<double> resumed;
    {
      Pretrainer b(config(prec, prec + "_b"), Resume::no);
      b.run({}, 10);
      resumed = b.step_losses();
    }
    {
      Pretrainer b2(config(prec, prec + "_b"), Resume::if_any);
      EXPECT_EQ(b2.start_step(), 10);
      b2.run({});
      resumed.insert(resumed.end(), b2.step_losses().begin(), b2.step_losses().end());
    }
    ASSERT_EQ(resumed.size(), 20u);
    for (size_t i = 0; i < 20; ++i) EXPECT_EQ(full[i], resumed[i]) << "step " << i + 1 << " differs after resume";
    const auto ca = inspect_checkpoint(*latest_intact_checkpoint((root_ / (prec + "_a")).string()));
    const auto cb = inspect_checkpoint(*latest_intact_checkpoint((root_ / (prec + "_b")).string()));
    std::ifstream fa(fs::path(ca.dir) / kOneShard, std::ios::binary), fb(fs::path(cb.dir) / kOneShard, std::ios::binary);
    const std::string ba((std::istreambuf_iterator<char>(fa)), {}), bb((std::istreambuf_iterator<char>(fb)), {});
    EXPECT_FALSE(ba.empty());
    EXPECT_TRUE(ba == bb) << "parameters and optimizer state after 20 straight steps differ from 10 + resume 10";
    EXPECT_EQ(ca.state.loss_scaler, cb.state.loss_scaler);
    test::expect_tensorboard_matches_metrics((root_ / (prec + "_b")).string());  // fp16: precision/ tags
    if (prec == "bf16") {
      EXPECT_TRUE(ca.state.loss_scaler.empty());
      continue;
    }
    // fp16: the scaler's trace in metrics.jsonl: skipped overflow steps halve the scale.
    const auto sc = nlohmann::json::parse(ca.state.loss_scaler);
    EXPECT_GE(sc.at("skipped").get<int64_t>(), 2);
    std::ifstream m(fs::path(root_ / (prec + "_b")) / "metrics.jsonl");
    double prev_scale = 0;
    bool prev_skipped = false;
    int64_t skipped = 0, lines = 0;
    for (std::string line; std::getline(m, line);) {
      const auto j = nlohmann::json::parse(line);
      if (!j.contains("loss")) continue;
      ++lines;
      const double scale = j.at("loss_scale").get<double>();
      if (lines == 1) {
        EXPECT_EQ(scale, kFp16StartScale);
      }
      if (prev_skipped) {
        EXPECT_EQ(scale, prev_scale / 2) << "line " << lines;
      }
      prev_skipped = j.at("skipped").get<bool>();
      skipped += prev_skipped;
      prev_scale = scale;
      EXPECT_EQ(j.at("skipped_steps").get<int64_t>(), skipped) << "line " << lines;
    }
    EXPECT_EQ(lines, 20);
    EXPECT_EQ(skipped, sc.at("skipped").get<int64_t>());
    EXPECT_LT(full.back(), full.front() - 0.5) << "fp16 training still learns after the skipped steps";
  }
}

// The GEMM library changes only the products' summation order: the same 20 steps on
// OpenBLAS and on oneDNN (fp32) track each other, and each resumes bit for bit (the
// run's determinism holds per library). Bound, not derived: a 20-step trajectory, as
// the bf16 test above; 1e-3 is 5x the largest step-loss difference seen between
// OpenBLAS kernel families and thread counts (2e-4, docs/TESTING.md), and a wrong
// product moves the loss by O(1).
TEST_F(PretrainTest, OpenblasAndOnednnTrainAlike) {
  std::vector<std::vector<double>> losses;
  for (const std::string gemm : {"openblas", "onednn"}) {
    PretrainConfig c = tiny_config(dataset_, (root_ / ("gemm_" + gemm)).string());
    c.gemm = gemm;
    Pretrainer p(c, Resume::no);
    std::string start;
    p.run([&](const PretrainEvent& e) {
      if (e.kind == PretrainEvent::Kind::start) start = e.text;
    });
    EXPECT_NE(start.find("(train.gemm " + gemm + ")"), std::string::npos) << start;
    EXPECT_NE(start.find(gemm == "onednn" ? "oneDNN" : "OpenBLAS"), std::string::npos) << start;
    losses.push_back(p.step_losses());
  }
  ASSERT_EQ(losses[0].size(), losses[1].size());
  double max_diff = 0;
  for (size_t i = 0; i < losses[0].size(); ++i) max_diff = std::max(max_diff, std::abs(losses[0][i] - losses[1][i]));
  std::printf("  openblas vs onednn: largest step-loss difference over %zu steps %.2e\n", losses[0].size(), max_diff);
  EXPECT_LT(max_diff, 1e-3);
}

// A bad value is reported first: before the dataset is read (it does not exist
// here) and, from the CLI, before run.dir's earlier checkpoints are looked at.
TEST_F(PretrainTest, ABadValueIsReportedBeforeTheDatasetIsRead) {
  const std::string missing = (root_ / "no_such_dataset").string(), run = (root_ / "run").string();
  PretrainConfig c = tiny_config(missing, run);
  c.lr = -1;
  try {
    Pretrainer p(c, Resume::no);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("optim.lr"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(run));  // nothing created either

  fs::create_directories(fs::path(run) / "checkpoints" / "step_00000010");  // an earlier run's
  const std::string cmd = std::string(TEDDY_BINARY_DIR) + "/teddy pretrain data.dataset=" + missing + " run.dir=" + run +
                          " optim.lr=-1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << out;
  EXPECT_NE(out.find("optim.lr"), std::string::npos) << out;
  EXPECT_EQ(out.find("earlier run"), std::string::npos) << out;
  EXPECT_EQ(out.find("no_such_dataset"), std::string::npos) << out;
}

// Progress suits where it runs: off a terminal, plain lines (no carriage returns or
// escape codes) every --print-every steps; --quiet: the summary alone; --json-progress:
// stdout is JSON lines only, one per event, whose step losses are metrics.jsonl's.
TEST_F(PretrainTest, ProgressSuitsWhereItRuns) {
  auto run_cli = [&](const std::string& name, const std::string& flags) {
    const fs::path dir = root_ / name;
    const std::string cmd = std::string(TEDDY_BINARY_DIR) + "/teddy pretrain " + flags +
                            " model.preset=gpt2-tiny train.micro_batch=2 train.seq_len=32 train.steps=7 train.threads=2"
                            " optim.warmup_steps=2 eval.interval=5 eval.batches=1 checkpoint.interval=0 run.peak_gflops=100 data.dataset=" +
                            dataset_ + " run.dir=" + dir.string() + " > " + (root_ / (name + ".out")).string() + " 2> " +
                            (root_ / (name + ".err")).string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << std::ifstream(root_ / (name + ".err")).rdbuf();
    auto slurp = [](const fs::path& p) {
      std::ifstream f(p);
      return std::string((std::istreambuf_iterator<char>(f)), {});
    };
    return std::pair{slurp(root_ / (name + ".out")), slurp(root_ / (name + ".err"))};
  };
  {
    const auto [out, err] = run_cli("plain", "--print-every 3");
    const std::string both = out + err;
    EXPECT_EQ(both.find('\r'), std::string::npos);
    EXPECT_EQ(both.find('\033'), std::string::npos);
    for (const char* want : {"] 1/7 ", "] 3/7 ", "] 6/7 ", "] 7/7 "}) EXPECT_NE(err.find(want), std::string::npos) << want << "\n" << err;
    EXPECT_EQ(err.find("] 2/7 "), std::string::npos) << err;
    EXPECT_NE(out.find("done:"), std::string::npos) << out;
  }
  {
    const auto [out, err] = run_cli("quiet", "--quiet");
    EXPECT_EQ(err.find("/7 "), std::string::npos) << err;
    EXPECT_EQ(err.find("validation loss"), std::string::npos) << err;
    EXPECT_NE(out.find("done:"), std::string::npos) << out;
    EXPECT_EQ(out.find("precision"), std::string::npos) << out;  // no start report
  }
  {
    const auto [out, err] = run_cli("json", "--json-progress");
    std::vector<nlohmann::json> events;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      ASSERT_NO_THROW(events.push_back(nlohmann::json::parse(line))) << "not JSON: " << line;
    }
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events.front()["event"], "start");
    EXPECT_EQ(events.back()["event"], "end");
    std::vector<double> losses;
    int evals = 0;
    for (const auto& e : events) {
      if (e["event"] == "step") losses.push_back(e["loss"].get<double>());
      if (e["event"] == "eval") ++evals;
    }
    EXPECT_EQ(evals, 2);  // steps 5 and 7
    std::ifstream m(root_ / "json" / "metrics.jsonl");
    std::vector<double> want;
    for (std::string line; std::getline(m, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) want.push_back(j["loss"].get<double>());
    }
    EXPECT_EQ(losses, want);
    EXPECT_EQ(losses.size(), 7u);
  }
}

// A full disk under metrics.jsonl (here /dev/full: every write fails with ENOSPC)
// stops the run with the file, the step and the reason, instead of training on with
// a torn metrics file.
TEST_F(PretrainTest, AFailedMetricsWriteStopsTheRun) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string run = (root_ / "run").string();
  fs::create_directories(run);
  fs::create_symlink("/dev/full", fs::path(run) / "metrics.jsonl");
  Pretrainer p(tiny_config(dataset_, run), Resume::no);
  try {
    p.run({});
    FAIL() << "a run whose metrics cannot be written went on";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((fs::path(run) / "metrics.jsonl").string() + ": write failed at step 1 (No space left on device)"),
              std::string::npos)
        << what;
  }
  EXPECT_EQ(p.step_losses().size(), 1u);
}

// The resume's reader of metrics.jsonl: a torn last line (a run killed mid-write, a
// full disk) and a line that is not JSON are dropped and said in the start report,
// never silently and never failing the resume; the rewritten file holds the steps up
// to the checkpoint and every line of it is JSON.
TEST_F(PretrainTest, ResumeDropsATornMetricsLineWithAWarning) {
  const std::string run = (root_ / "run").string();
  {
    Pretrainer p(tiny_config(dataset_, run), Resume::no);
    p.run({}, 13);  // checkpoint at step 10 and (stop-after) 13
  }
  const fs::path metrics = fs::path(run) / "metrics.jsonl";
  fs::remove_all(checkpoint_dir(run, 13));  // resume from step 10: steps 11-13 are cut
  std::vector<std::string> lines;
  {
    std::ifstream in(metrics);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  ASSERT_GE(lines.size(), 5u);
  lines.insert(lines.begin() + 2, "#garbage");
  {
    std::ofstream out(metrics, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
    out << "{\"step\": 14, \"loss\": 4.1";  // torn: no end, no newline
  }
  Pretrainer r(tiny_config(dataset_, run), Resume::if_any);
  ASSERT_EQ(r.start_step(), 10);
  std::string start_text;
  r.run([&](const PretrainEvent& e) {
    if (e.kind == PretrainEvent::Kind::start) start_text = e.text;
  }, 12);
  EXPECT_NE(start_text.find("# " + metrics.string() + ":3: dropped a line that is not JSON"), std::string::npos) << start_text;
  EXPECT_NE(start_text.find("# " + metrics.string() + ":" + std::to_string(lines.size() + 1) +
                            ": dropped the last line, cut off"),
            std::string::npos)
      << start_text;
  std::ifstream in(metrics);
  std::vector<int64_t> steps;
  for (std::string l; std::getline(in, l);) {
    const auto j = nlohmann::json::parse(l, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << l;
    if (j.contains("loss")) steps.push_back(j["step"].get<int64_t>());
  }
  std::vector<int64_t> want(12);
  for (int i = 0; i < 12; ++i) want[static_cast<size_t>(i)] = i + 1;
  EXPECT_EQ(steps, want);
}
