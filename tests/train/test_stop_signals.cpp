// `teddy pretrain` stopped by signals, as a scheduler or a user stops it: SIGTERM,
// SIGINT and SIGUSR1 end the run after the current step with a checkpoint of that
// step and exit code 75; the resumed run is the uninterrupted one bit for bit. A
// second signal (one that may land in the middle of a save) ends the process at
// once and leaves every committed checkpoint intact. Each trial prints the time from
// the signal to the exit. TEDDY_SIGNAL_TRIALS=N runs N second-signal trials (4 by
// default; docs/CLUSTER.md quotes a run of 20).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/data/prepare.h"

namespace fs = std::filesystem;
using namespace teddy;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kTeddy = std::string(TEDDY_BINARY_DIR) + "/teddy";
constexpr int kStoppedExit = 75;  // cli/commands.h kExitStoppedBySignal

std::string make_dataset(const fs::path& root) {
  const fs::path src = root / "src";
  fs::create_directories(src);
  std::mt19937 rng(5);
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
  for (int f = 0; f < 6; ++f) {
    std::ofstream out(src / ("doc" + std::to_string(f) + ".txt"));
    for (int w = 0; w < 800; ++w) out << words[rng() % 12] << (w % 13 == 12 ? ".\n" : " ");
  }
  PrepareConfig pc;
  SourceSpec a;
  a.name = "prose";
  a.kind = SourceKind::text;
  a.paths = {src.string()};
  pc.sources = {a};
  pc.tokenizer = "bytes";
  pc.out_dir = (root / "dataset").string();
  pc.val_fraction = 0.2;
  pc.overwrite = true;
  prepare_dataset(pc);
  return pc.out_dir;
}

struct Child {
  pid_t pid = -1;
  std::string log;
};

// A teddy process of its own (exec'd right after fork), output to `log`.
Child spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv{kTeddy};
  argv.insert(argv.end(), args.begin(), args.end());
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stdout);
    ::dup2(::fileno(stdout), 2);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::execv(kTeddy.c_str(), cargv.data());
    ::_exit(127);
  }
  return {pid, log};
}

std::string read_text(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// step -> training loss from metrics.jsonl (doubles as JSON writes them: round-trip exact).
std::map<int, double> losses(const fs::path& run) {
  std::map<int, double> m;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("loss")) m[j["step"].get<int>()] = j["loss"].get<double>();
  }
  return m;
}

int logged_steps(const fs::path& run) { return static_cast<int>(losses(run).size()); }

// Waits for the child; true with its status, false after `timeout` (it is then killed).
bool wait_for(pid_t pid, int& status, double timeout_s) {
  const auto t0 = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - t0).count() < timeout_s) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return false;
}

class StopSignals : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("teddy_stop_signals_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    dataset_ = make_dataset(root_);
    // The uninterrupted reference: the first kRefSteps steps of a kTotal-step run.
    reference_ = root_ / "reference";
    Child c = spawn(args(reference_, {"--stop-after", std::to_string(kRefSteps)}), (root_ / "reference.log").string());
    int st = 0;
    ASSERT_TRUE(wait_for(c.pid, st, 300));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(c.log);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static constexpr int kTotal = 2000, kRefSteps = 40;
  static std::vector<std::string> args(const fs::path& run, std::vector<std::string> extra, int interval = 20) {
    std::vector<std::string> a{"pretrain",
                               "data.dataset=" + dataset_,
                               "run.dir=" + run.string(),
                               "model.preset=gpt2-tiny",
                               "train.seq_len=32",
                               "train.micro_batch=4",
                               "train.steps=" + std::to_string(kTotal),
                               "train.threads=1",
                               "train.seed=7",
                               "optim.lr=3e-3",
                               "optim.warmup_steps=4",
                               "eval.interval=1000",
                               "eval.batches=1",
                               "checkpoint.interval=" + std::to_string(interval),
                               "checkpoint.keep=3",
                               "run.peak_gflops=100"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Resumes `run` to kRefSteps and checks every step's loss and the final
  // parameters and optimizer state against the uninterrupted reference, bit for bit.
  static void expect_resume_matches_reference(const fs::path& run, const std::string& name) {
    Child c = spawn(args(run, {"--resume", "--stop-after", std::to_string(kRefSteps)}), (root_ / (name + ".resume.log")).string());
    int st = 0;
    ASSERT_TRUE(wait_for(c.pid, st, 300));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(c.log);
    const auto want = losses(reference_), got = losses(run);
    ASSERT_EQ(want.size(), static_cast<size_t>(kRefSteps));
    ASSERT_EQ(got.size(), want.size()) << name;
    for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << name << ": step " << step;
    const std::string shard = "/shard_00000_of_00001.safetensors";
    EXPECT_EQ(read_text(checkpoint_dir(reference_.string(), kRefSteps) + shard),
              read_text(checkpoint_dir(run.string(), kRefSteps) + shard))
        << name << ": parameters and optimizer state at step " << kRefSteps << " differ from the uninterrupted run";
  }
  static fs::path root_, reference_;
  static std::string dataset_;
};
fs::path StopSignals::root_, StopSignals::reference_;
std::string StopSignals::dataset_;

}  // namespace

TEST_F(StopSignals, EachStopSignalSavesTheStepItEndsAtAndTheResumeIsExact) {
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) {
    const std::string name = std::string("sig") + std::to_string(sig);
    const fs::path run = root_ / name;
    Child c = spawn(args(run, {}), (root_ / (name + ".log")).string());
    // Between the checkpoints of steps 20 and 40: stopping must save a step no interval would.
    while (logged_steps(run) < 23) {
      int st = 0;
      ASSERT_NE(::waitpid(c.pid, &st, WNOHANG), c.pid) << "ended before the signal: " << read_text(c.log);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const auto t0 = Clock::now();
    ASSERT_EQ(::kill(c.pid, sig), 0);
    int st = 0;
    ASSERT_TRUE(wait_for(c.pid, st, 60)) << "did not stop within 60 s of the signal";
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::string out = read_text(c.log);
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0) << "\n" << out;
    EXPECT_EQ(WEXITSTATUS(st), kStoppedExit) << out;
    const auto ckpts = list_checkpoints(run.string());
    ASSERT_FALSE(ckpts.empty());
    const CheckpointInfo info = inspect_checkpoint(ckpts.front());
    const int saved = static_cast<int>(info.state.step);
    // At most the step running when the signal came is lost: the newest checkpoint is
    // the last step metrics.jsonl logged.
    EXPECT_EQ(saved, logged_steps(run)) << out;
    EXPECT_LT(saved, kRefSteps) << "the signal was handled too late for the comparison below";
    const std::string sig_name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1";
    EXPECT_NE(out.find("stopped by " + sig_name + " after step " + std::to_string(saved) + " of " +
                       std::to_string(kTotal) + ": checkpoint " + checkpoint_dir(run.string(), saved) + " written"),
              std::string::npos)
        << out;
    std::printf("  %s: saved step %d, signal to exit %.3f s\n", sig_name.c_str(), saved, secs);
    expect_resume_matches_reference(run, name);
  }
}

// A second signal ends the process at once, wherever it lands (a checkpoint is
// saved every step here, so most land in or near a save). Whatever happened, every
// committed checkpoint verifies and the resumed run is the uninterrupted one.
TEST_F(StopSignals, ASecondSignalEndsAtOnceAndNoCheckpointIsDamaged) {
  const char* env = std::getenv("TEDDY_SIGNAL_TRIALS");
  const int trials = env ? std::max(1, std::atoi(env)) : 4;
  std::mt19937 rng(42);
  int killed = 0, saved_first = 0;
  for (int t = 0; t < trials; ++t) {
    const std::string name = "twice" + std::to_string(t);
    const fs::path run = root_ / name;
    Child c = spawn(args(run, {}, 1), (root_ / (name + ".log")).string());
    const int at = 5 + static_cast<int>(rng() % 15);
    while (logged_steps(run) < at) {
      int st = 0;
      ASSERT_NE(::waitpid(c.pid, &st, WNOHANG), c.pid) << read_text(c.log);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const int sig = t % 2 ? SIGINT : SIGTERM;
    const auto t0 = Clock::now();
    ASSERT_EQ(::kill(c.pid, sig), 0);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 8000));
    ::kill(c.pid, sig);  // may find it gone already
    int st = 0;
    ASSERT_TRUE(wait_for(c.pid, st, 60));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::string out = read_text(c.log);
    if (WIFSIGNALED(st)) {
      EXPECT_EQ(WTERMSIG(st), sig) << out;
      ++killed;
    } else {
      EXPECT_EQ(WEXITSTATUS(st), kStoppedExit) << out;  // the save finished before the second signal
      ++saved_first;
    }
    const auto ckpts = list_checkpoints(run.string());
    ASSERT_FALSE(ckpts.empty()) << out;
    for (const std::string& d : ckpts) EXPECT_NO_THROW(verify_checkpoint(d)) << d;
    std::printf("  trial %d: %s at step >= %d, %s after %.3f s; newest checkpoint step %lld\n", t,
                sig == SIGINT ? "SIGINT" : "SIGTERM", at,
                WIFSIGNALED(st) ? "killed by the second signal" : "exited 75 before the second", secs,
                static_cast<long long>(inspect_checkpoint(ckpts.front()).state.step));
    expect_resume_matches_reference(run, name);
  }
  std::printf("  %d trials: %d ended by the second signal, %d had saved and exited first\n", trials, killed, saved_first);
}
