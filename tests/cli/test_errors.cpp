// The built `teddy` binary on bad command lines (issue 24's small ones): each error
// names what the user typed (the override, the directory, the flag, the file) and
// the values involved, exits 1 and never hangs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/run_teddy.h"

namespace fs = std::filesystem;

namespace {

using Result = teddy::test::CliResult;

// `timeout` so a command that goes on instead of failing (`-c DIR` once read the
// directory as an empty config and started training on the defaults) fails the test
// instead of stalling the suite; 124 is timeout's exit code.
Result run_teddy(const std::string& args) {
  return teddy::test::run_teddy(args, teddy::test::Stderr::merge, "OMP_NUM_THREADS=1 timeout 60 ");
}

class CliErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("teddy_cli_errors_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "txt");
    std::ofstream(root_ / "txt" / "a.txt") << "the cat sat on the mat and the dog ran far away\n";
    std::ofstream(root_ / "sft.toml") << "[data]\ntrain = \"x.jsonl\"\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string path(const std::string& name) { return (root_ / name).string(); }
  static fs::path root_;
};
fs::path CliErrors::root_;

void expect_error(const Result& r, const std::string& want) {
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("teddy: error: " + want), std::string::npos) << "want: " << want << "\ngot: " << r.out;
}

}  // namespace

// A bad value from the command line is the override's fault, not the config file's.
TEST_F(CliErrors, AnOverrideErrorNamesTheOverride) {
  expect_error(run_teddy("pretrain run.dir=" + path("r") + " model.d_model=abc"),
               "override model.d_model=abc: expected an integer");
  expect_error(run_teddy("pretrain run.dir=" + path("r") + " train.steps=5 train.steps=many"),
               "override train.steps=many: expected an integer");
  expect_error(run_teddy("pretrain run.dir=" + path("r") + " model.bogus=1"), "override model.bogus=1: unknown key; known keys: ");
  expect_error(run_teddy("sft -c " + path("sft.toml") + " train.micro_batch=two"),
               "override train.micro_batch=two: expected an integer");
  // A value from the file still names the file.
  std::ofstream(root_ / "bad.toml") << "[model]\nd_model = \"abc\"\n";
  expect_error(run_teddy("pretrain -c " + path("bad.toml")), path("bad.toml") + ": model.d_model: expected an integer");
}

TEST_F(CliErrors, ADirectoryAsConfigIsRefused) {
  for (const std::string cmd : {"pretrain", "sft"})
    expect_error(run_teddy(cmd + " -c " + root_.string()), root_.string() + ": is a directory; --config expects a TOML file");
}

TEST_F(CliErrors, NegativeStopAfterIsRefused) {
  expect_error(run_teddy("pretrain --stop-after -3 run.dir=" + path("r")), "--stop-after: expected a number of steps >= 1 (got -3)");
  expect_error(run_teddy("sft -c " + path("sft.toml") + " --stop-after -1"),
               "--stop-after: expected a number of steps >= 1 (got -1)");
}

TEST_F(CliErrors, TheWarmupErrorShowsTheValues) {
  const Result prep = run_teddy("data prepare --text " + path("txt") + " --name t --tokenizer bytes --out " + path("ds"));
  ASSERT_EQ(prep.rc, 0) << prep.out;
  expect_error(run_teddy("pretrain data.dataset=" + path("ds") + " run.dir=" + path("w") +
                         " model.preset=gpt2-tiny train.seq_len=16 train.steps=10 optim.warmup_steps=50"),
               "optim.warmup_steps: must be in [0, total steps] (got 50, total steps 10)");
  EXPECT_FALSE(fs::exists(root_ / "w" / "checkpoints"));
}

TEST_F(CliErrors, AMissingTokenizerFileIsNamed) {
  expect_error(run_teddy("generate --checkpoint " + path("no_run") + " --tokenizer " + path("missing.json") + " --prompt hi"),
               path("missing.json") + ": tokenizer file not found");
}

// `teddy data inspect` checks the dataset's tokenizer like its shards, and
// `teddy pretrain` refuses a dataset whose tokenizer was swapped, naming both.
TEST_F(CliErrors, InspectAndPretrainRefuseASwappedTokenizer) {
  for (const std::string v : {"270", "262"}) {
    const Result t = run_teddy("tokenizer train -i " + path("txt") + " --vocab-size " + v + " -o " + path("tok" + v + ".json"));
    ASSERT_EQ(t.rc, 0) << t.out;
  }
  const Result prep = run_teddy("data prepare --text " + path("txt") + " --name t --tokenizer " + path("tok270.json") +
                                " --out " + path("tds"));
  ASSERT_EQ(prep.rc, 0) << prep.out;
  const Result ok = run_teddy("data inspect " + path("tds"));
  EXPECT_EQ(ok.rc, 0) << ok.out;
  EXPECT_NE(ok.out.find("tokenizer " + path("tds") + "/tokenizer/tok270.json (vocab 270"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("verified, the dataset's copy"), std::string::npos) << ok.out;
  fs::copy_file(path("tok262.json"), path("tds/tokenizer/tok270.json"), fs::copy_options::overwrite_existing);
  const std::string named = path("tds") + "/tokenizer/tok270.json: not the tokenizer this dataset was tokenized with: xxh3 ";
  const Result bad = run_teddy("data inspect " + path("tds"));
  expect_error(bad, named);
  EXPECT_NE(bad.out.find("(vocabulary 262), " + path("tds") + "/manifest.json records "), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("(vocabulary 270)"), std::string::npos) << bad.out;
  expect_error(run_teddy("pretrain data.dataset=" + path("tds") + " run.dir=" + path("tr") +
                         " model.preset=gpt2-tiny train.seq_len=16 train.steps=2 optim.warmup_steps=1"),
               named);
}

// Under a tight `ulimit -v` every command hung before main() in OpenBLAS's loader
// (it retries a failed 128 MiB buffer forever); now the executable's preinit check
// refuses at once, saying why and what to raise. 100 MB is below what any machine
// needs for the libraries and one buffer (one thread); 1 GB is plenty for one.
TEST_F(CliErrors, ATightAddressSpaceLimitIsRefusedNotHung) {
  const std::string bin = teddy::test::teddy_binary();
  auto run_limited = [&](int kb) {
    return teddy::test::run_shell("OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 timeout 20 sh -c 'ulimit -v " +
                                  std::to_string(kb) + "; exec " + bin + " --version' 2>&1");
  };
  const Result tight = run_limited(100000);
  EXPECT_NE(tight.rc, 124) << "hung under ulimit -v 100000";
  expect_error(tight, "ulimit -v (RLIMIT_AS) is 98 MiB and loading teddy's libraries already takes ");
  EXPECT_NE(tight.out.find("OpenBLAS reserves 129 MiB per thread while it loads (1 thread"), std::string::npos) << tight.out;
  EXPECT_NE(tight.out.find("raise ulimit -v to at least "), std::string::npos) << tight.out;
  const Result ample = run_limited(1000000);
  EXPECT_EQ(ample.rc, 0) << ample.out;
}
