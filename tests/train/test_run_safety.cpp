// `teddy pretrain` on a shared machine, as a user would run it (docs/CLUSTER.md).
//
// Stopped by signals, as a scheduler or a user stops it: SIGTERM,
// SIGINT and SIGUSR1 end the run after the current step with a checkpoint of that
// step and exit code 75; the resumed run is the uninterrupted one bit for bit. A
// second signal (one that may land in the middle of a save) ends the process at
// once and leaves every committed checkpoint intact. Each trial prints the time from
// the signal to the exit. TEDDY_SIGNAL_TRIALS=N runs N second-signal trials (4 by
// default; docs/CLUSTER.md quotes a run of 20).
//
// One writer per run directory: a second `teddy pretrain` on a running run's
// directory is refused naming the holder, and the lock of a killed run does not
// block the next. Memory checked before it is spent: a run that cannot fit is
// refused within a second, naming the buffers, what is available and what fits.
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
#include "teddy/io/run_lock.h"
#include "teddy/core/error.h"
#include "teddy/train/memory_check.h"
#include "teddy/data/prepare.h"
#include "train/word_dataset.h"

namespace fs = std::filesystem;
using namespace teddy;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kTeddy = std::string(TEDDY_BINARY_DIR) + "/teddy";
constexpr int kStoppedExit = 75;  // cli/commands.h kExitStoppedBySignal

std::string make_dataset(const fs::path& root) { return test::make_word_dataset(root, 6, 800); }

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

class RunSafety : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("teddy_run_safety_" + std::to_string(::getpid()));
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
fs::path RunSafety::root_, RunSafety::reference_;
std::string RunSafety::dataset_;

}  // namespace

TEST_F(RunSafety, EachStopSignalSavesTheStepItEndsAtAndTheResumeIsExact) {
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
TEST_F(RunSafety, ASecondSignalEndsAtOnceAndNoCheckpointIsDamaged) {
  const char* env = std::getenv("TEDDY_SIGNAL_TRIALS");
  const int trials = env ? std::max(1, std::atoi(env)) : 4;
  std::mt19937 rng(42);
  int killed = 0, saved_first = 0, in_save = 0;
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
    // A temporary directory left behind: the second signal landed inside a save.
    auto temps = [&] {
      int n = 0;
      for (const auto& e : fs::directory_iterator(run / "checkpoints")) n += e.path().filename().string().find(".tmp-") != std::string::npos;
      return n;
    };
    const int mid_save = temps();
    std::printf("  trial %d: %s at step >= %d, %s after %.3f s%s; newest checkpoint step %lld\n", t,
                sig == SIGINT ? "SIGINT" : "SIGTERM", at,
                WIFSIGNALED(st) ? "killed by the second signal" : "exited 75 before the second", secs,
                mid_save ? " inside a save (its temporary directory left)" : "",
                static_cast<long long>(inspect_checkpoint(ckpts.front()).state.step));
    in_save += mid_save > 0;
    expect_resume_matches_reference(run, name);
    EXPECT_EQ(temps(), 0) << "the resumed run did not remove the killed save's temporary directory";
  }
  std::printf("  %d trials: %d ended by the second signal (%d inside a save), %d had saved and exited first\n", trials,
              killed, in_save, saved_first);
}

// A second writer on a running run's directory is refused naming the first one's
// pid and host; --overwrite is refused before it deletes anything; the first run is
// untouched and, once it is gone (here killed: no clean-up ran), the lock file it
// left does not block the next run.
TEST_F(RunSafety, ASecondWriterIsRefusedNamingTheHolder) {
  const fs::path run = root_ / "locked";
  Child first = spawn(args(run, {}), (root_ / "locked.log").string());
  while (list_checkpoints(run.string()).empty()) {  // a checkpoint --overwrite would delete
    int st = 0;
    ASSERT_NE(::waitpid(first.pid, &st, WNOHANG), first.pid) << read_text(first.log);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--resume"}, std::vector<std::string>{"--overwrite"}}) {
    const auto t0 = Clock::now();
    Child second = spawn(args(run, extra), (root_ / "second.log").string());
    int st = 0;
    ASSERT_TRUE(wait_for(second.pid, st, 60));
    const std::string out = read_text(second.log);
    ASSERT_TRUE(WIFEXITED(st)) << out;
    EXPECT_EQ(WEXITSTATUS(st), 1) << out;
    EXPECT_NE(out.find(run.string() + " is in use: locked by teddy pid " + std::to_string(first.pid) + " on "),
              std::string::npos)
        << out;
    std::printf("  %s refused after %.3f s\n", extra[0].c_str(), std::chrono::duration<double>(Clock::now() - t0).count());
  }
  ASSERT_FALSE(list_checkpoints(run.string()).empty()) << "--overwrite deleted the running run's checkpoints";
  int st = 0;
  EXPECT_NE(::waitpid(first.pid, &st, WNOHANG), first.pid) << "the first run did not survive the second";
  // Killed outright: its lock file stays, its lock goes with the process.
  ASSERT_EQ(::kill(first.pid, SIGKILL), 0);
  ASSERT_TRUE(wait_for(first.pid, st, 60));
  ASSERT_TRUE(fs::exists(run / ".lock"));
  Child next = spawn(args(run, {"--resume", "--stop-after", "3000"}), (root_ / "next.log").string());
  ASSERT_TRUE(wait_for(next.pid, st, 60));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(next.log);
}

// In one process the lock is shared (the job and its Trainer both take it); another
// process is refused until the holder is gone.
TEST(RunLock, HeldByOneProcessAtATime) {
  const fs::path dir = fs::temp_directory_path() / ("teddy_run_lock_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    auto a = RunLock::acquire(dir.string());
    auto b = RunLock::acquire(dir.string());
    EXPECT_EQ(a, b);
    EXPECT_TRUE(a->note().empty()) << a->note();
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {  // another process: refused
      try {
        RunLock::acquire(dir.string());
        ::_exit(3);
      } catch (const Error& e) {
        ::_exit(std::string(e.what()).find("locked by teddy pid " + std::to_string(::getppid())) != std::string::npos ? 0 : 4);
      }
    }
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "exit " << WEXITSTATUS(st) << " (3: not refused, 4: holder not named)";
  }
  // Released with the last holder: another process takes it.
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      RunLock::acquire(dir.string());
      ::_exit(0);
    } catch (...) {
      ::_exit(5);
    }
  }
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  fs::remove_all(dir);
}

// A run that needs more memory than the process may use is refused within a second,
// before its first large allocation, naming every buffer, what is available and
// what would fit. llama-1B at micro_batch 16 x 2048 needs ~85 GB (the case),
// beyond any machine this suite runs on but well inside what --no-memory-check
// would try to allocate.
TEST_F(RunSafety, ARunThatCannotFitIsRefusedBeforeItAllocates) {
  const MemoryBudget avail = available_memory();
  if (avail.bytes > 80e9) GTEST_SKIP() << "this machine has " << avail.bytes / 1e9 << " GB available";
  const fs::path run = root_ / "too_big";
  const auto t0 = Clock::now();
  Child c = spawn({"pretrain", "data.dataset=" + dataset_, "run.dir=" + run.string(), "model.preset=llama-1B",
                   "train.seq_len=2048", "train.micro_batch=16", "train.steps=10", "optim.warmup_steps=1",
                   "run.peak_gflops=1"},
                  (root_ / "too_big.log").string());
  int st = 0;
  ASSERT_TRUE(wait_for(c.pid, st, 60));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string out = read_text(c.log);
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  for (const char* part : {"not enough memory for this run: it needs ", "parameters ", "gradients ", "AdamW ",
                           "activations ", "for micro_batch 16 x seq_len 2048", " available (", "fits with train.micro_batch <= ",
                           "--no-memory-check"})
    EXPECT_NE(out.find(part), std::string::npos) << part << "\n" << out;
  EXPECT_LT(secs, 10) << out;
  std::printf("  refused after %.3f s: %s", secs, out.c_str());
}

// The check's arithmetic with a budget given: the same setup fits a budget above its
// need and is refused below it; the fixes it names do fit.
TEST(MemoryCheck, RefusesBelowTheNeedAndTheFixesFit) {
  ModelConfig cfg = ModelConfig::preset("llama-134M");
  plan::TrainSetup setup;
  setup.micro_batch = 16;
  setup.seq_len = 1024;
  const double need = plan::estimate_memory(cfg, setup).total() + runtime_allowance_bytes(2);
  EXPECT_EQ(memory_check_failure(cfg, setup, 2, 1, MemoryBudget{need * 1.01, "test"}), "");
  const std::string msg = memory_check_failure(cfg, setup, 2, 1, MemoryBudget{need * 0.5, "test budget"});
  ASSERT_NE(msg, "");
  EXPECT_NE(msg.find("available (test budget)"), std::string::npos) << msg;
  const size_t at = msg.find("train.micro_batch <= ");
  ASSERT_NE(at, std::string::npos) << msg;
  const int b = std::stoi(msg.substr(at + 21));
  ASSERT_GE(b, 1);
  ASSERT_LT(b, 16);
  plan::TrainSetup fixed = setup;
  fixed.micro_batch = b;
  EXPECT_EQ(memory_check_failure(cfg, fixed, 2, 1, MemoryBudget{need * 0.5, "test"}), "");
  fixed.micro_batch = b + 1;
  EXPECT_NE(memory_check_failure(cfg, fixed, 2, 1, MemoryBudget{need * 0.5, "test"}), "");
  // Two ranks on this machine need twice the memory.
  EXPECT_NE(memory_check_failure(cfg, setup, 2, 2, MemoryBudget{need * 1.01, "test"}), "");
  // What the process holds already (SFT's loaded model) is not needed again.
  EXPECT_EQ(memory_check_failure(cfg, setup, 2, 1, MemoryBudget{need * 0.5, "test"}, need * 0.6), "");
  EXPECT_NE(memory_check_failure(cfg, setup, 2, 1, MemoryBudget{need * 0.5, "test"}, need * 0.4), "");
}

// `teddy generate --checkpoint RUN` and `teddy export hf|gguf --checkpoint RUN` fall
// back past a damaged newest checkpoint and say which one and why (generate on
// stderr: its stdout is the generated text).
TEST_F(RunSafety, GenerateAndExportNameTheDamagedCheckpointTheySkip) {
  const fs::path run = root_ / "damaged";
  fs::copy(reference_, run, fs::copy_options::recursive);
  const std::string newest = checkpoint_dir(run.string(), kRefSteps);
  {
    std::fstream io(newest + "/shard_00000_of_00001.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-7, std::ios::end);
    io.put('\x5a');
  }
  Child c = spawn({"generate", "--checkpoint", run.string(), "--prompt", "the cat", "-n", "2", "--temperature", "0"},
                  (root_ / "generate.log").string());
  int st = 0;
  ASSERT_TRUE(wait_for(c.pid, st, 60));
  const std::string out = read_text(c.log);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  const std::string named = "# skipped damaged checkpoint " + newest + ": " + newest +
                            "/shard_00000_of_00001.safetensors: checksum mismatch";
  EXPECT_NE(out.find(named), std::string::npos) << out;
  for (const std::string format : {"hf", "gguf"}) {
    Child e = spawn({"export", format, "--checkpoint", run.string(), "--out", (root_ / ("exported." + format)).string()},
                    (root_ / ("export_" + format + ".log")).string());
    ASSERT_TRUE(wait_for(e.pid, st, 60));
    const std::string eout = read_text(e.log);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << eout;
    EXPECT_NE(eout.find(named), std::string::npos) << eout;
    EXPECT_NE(eout.find("exported " + checkpoint_dir(run.string(), 20)), std::string::npos) << eout;
  }
}

// `teddy data prepare` out of memory (here under `ulimit -v`, one 48 MB document
// whose tokens alone take 190 MB) is a clear error naming the source, not
// "internal error: std::bad_alloc", and writes nothing.
TEST_F(RunSafety, DataPrepareOutOfMemoryIsNamed) {
  const fs::path src = root_ / "huge";
  fs::create_directories(src);
  {
    std::ofstream out(src / "one.txt", std::ios::binary);
    const std::string chunk = "the cat sat on a mat and the dog ran far away home. ";
    for (size_t n = 0; n < 48'000'000; n += chunk.size()) out << chunk;
  }
  const fs::path out_dir = root_ / "huge_ds", log = root_ / "huge.log";
  const std::string cmd = "ulimit -v 400000; OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 exec " + kTeddy +
                          " data prepare --text " + src.string() + " --name huge --tokenizer bytes --out " +
                          out_dir.string() + " > " + log.string() + " 2>&1";
  const int st = std::system(("/bin/sh -c '" + cmd + "'").c_str());
  const std::string out = read_text(log.string());
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  EXPECT_NE(out.find("data prepare: out of memory while tokenizing source \"huge\" ("), std::string::npos) << out;
  EXPECT_EQ(out.find("internal error"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(out_dir));
  fs::remove_all(src);
}

// The disk fills between two checkpoints: a real full disk, a tmpfs mounted in a
// user and mount namespace of its own (`unshare -rm`, no privileges needed where user
// namespaces are allowed; skipped where they are not: the write path's failure is
// then still covered by Checkpoint.AFailedSaveLeavesNoCheckpointAndNoTemporary). Its
// size fits the run's files and one checkpoint and half of the next, so the save of
// step 10 fails. The run stops at once with an error naming that checkpoint and the
// newest intact one; the checkpoint of step 5 verifies; no temporary directory is
// left. The tmpfs vanishes with the namespace, so the shell copies the run out first.
TEST_F(RunSafety, AFullDiskStopsTheRunNamingTheCheckpointAndKeepsThePreviousOne) {
  if (std::system("unshare -rm true > /dev/null 2>&1") != 0) GTEST_SKIP() << "no user/mount namespaces here (unshare -rm)";
  // One checkpoint's size (and the run's other files) from a normal run of 5 steps.
  const fs::path probe = root_ / "disk_probe";
  Child c = spawn(args(probe, {"--stop-after", "5"}, 5), (root_ / "disk_probe.log").string());
  int st = 0;
  ASSERT_TRUE(wait_for(c.pid, st, 120));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(c.log);
  uintmax_t ckpt = 0, total = 0;
  for (const auto& e : fs::recursive_directory_iterator(probe))
    if (e.is_regular_file()) {
      total += e.file_size();
      if (e.path().string().find("/checkpoints/") != std::string::npos) ckpt += e.file_size();
    }
  const uintmax_t size_kb = (total + ckpt / 2) / 1024 + 64;  // + 64 KiB: metrics lines, tmpfs pages

  const fs::path mnt = root_ / "full_disk", out = root_ / "full_disk_copy", log = root_ / "full_disk.log";
  fs::create_directories(mnt);
  std::string cmd = "mount -t tmpfs -o size=" + std::to_string(size_kb) + "k tmpfs " + mnt.string() + " && OMP_NUM_THREADS=1 " +
                    kTeddy;
  for (const std::string& a : args(mnt / "run", {"--stop-after", "20", "checkpoint.keep=0"}, 5)) cmd += " '" + a + "'";
  cmd += " > " + log.string() + " 2>&1; rc=\\$?; cp -r " + (mnt / "run").string() + " " + out.string() + "; exit \\$rc";  // \\$: expanded by the inner shell, not by std::system's
  const int sys = std::system(("unshare -rm sh -c \"" + cmd + "\"").c_str());
  const std::string text = read_text(log.string());
  ASSERT_TRUE(WIFEXITED(sys)) << text;
  EXPECT_EQ(WEXITSTATUS(sys), 1) << text;
  const std::string newest = checkpoint_dir((mnt / "run").string(), 5);
  for (const std::string& part :
       {std::string("checkpoint of step 10 could not be written: checkpoint: "), std::string("No space left on device"),
        std::string("its temporary directory was removed"),
        "the run stops at step 10, the newest checkpoint is " + newest + " (intact): free space and continue with --resume"})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  EXPECT_EQ(text.find("internal error"), std::string::npos) << text;
  // The previous checkpoint verifies; no later one and no temporary directory exists.
  const auto ckpts = list_checkpoints(out.string());
  ASSERT_EQ(ckpts.size(), 1u) << text;
  EXPECT_NO_THROW(verify_checkpoint(ckpts[0]));
  EXPECT_EQ(inspect_checkpoint(ckpts[0]).state.step, 5);
  for (const auto& e : fs::directory_iterator(out / "checkpoints"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path() << " left behind";
  std::printf("  tmpfs of %llu KiB (one checkpoint %llu KiB): %s", static_cast<unsigned long long>(size_kb),
              static_cast<unsigned long long>(ckpt / 1024), text.substr(text.find("teddy: error")).c_str());
}
