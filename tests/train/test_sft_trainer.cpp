// The SFT loop end to end on a tiny model: vocabulary growth for the template, loss
// falling, exact resume, exact-match evaluation, bad lines, config errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "checkpoint/legacy_writer.h"
#include "train/sft_test_util.h"
#include "teddy/core/error.h"
#include "teddy/eval/sft_exact_match.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/train/chat_model.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/train/sft_trainer.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

SftConfig tiny_config(const std::string& base, const std::string& data, const std::string& run_dir,
                      std::vector<std::string> ov = {}) {
  ov.push_back("model.init=" + base);
  ov.push_back("data.train=" + data);
  ov.push_back("run.dir=" + run_dir);
  return SftConfig::parse(R"(
[data]
val_fraction = 0.15
[train]
micro_batch = 4
seq_len = 64
grad_accum = 2
steps = 24
seed = 5
threads = 1
[optim]
lr = 1e-2
warmup_steps = 3
[eval]
interval = 8
[checkpoint]
interval = 8
keep = 5
[run]
peak_gflops = 100
)", "test.toml", ov);
}

class SftTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("teddy_sft_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    base_ = test::make_sft_base(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::string base_;
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace

TEST_F(SftTrainerTest, LearnsResumesExactlyAndAnswers) {
  const std::string data = test::make_sft_data(root_);
  const std::string run_a = (root_ / "a").string(), run_b = (root_ / "b").string();
  std::vector<double> full;
  {
    SftTrainer a(tiny_config(base_, data, run_a), Resume::no);
    const SftDataReport& r = a.data_report();
    EXPECT_EQ(r.added_specials, 2);
    EXPECT_EQ(r.base_vocab, 257);
    EXPECT_EQ(r.vocab, 259);
    EXPECT_EQ(a.model().config().padded_vocab_size, 320);
    EXPECT_EQ(r.train_read.examples, 80u);
    EXPECT_EQ(r.train.examples + r.val.examples, 80u);
    EXPECT_GT(r.val.examples, 4u);
    EXPECT_EQ(a.total_steps(), 24);
    int evals = 0;
    a.run([&](const SftEvent& e) { evals += e.kind == SftEvent::Kind::eval; });
    EXPECT_EQ(evals, 1 + 3);  // before the first step, then every 8 steps
    full = a.step_losses();
  }
  ASSERT_EQ(full.size(), 24u);
  std::cout << "  training loss " << full.front() << " -> " << full.back() << "\n";
  EXPECT_LT(full.back(), 0.5 * full.front()) << "the SFT loss should fall on this easy task";
  for (const char* f : {"tokenizer.json", "chat_template.json", "config.toml", "metrics.jsonl"})
    EXPECT_TRUE(fs::exists(fs::path(run_a) / f)) << f;

  std::vector<double> resumed;
  {
    SftTrainer b(tiny_config(base_, data, run_b), Resume::no);
    b.run({}, 12);
    resumed = b.step_losses();
  }
  {
    SftTrainer b2(tiny_config(base_, data, run_b), Resume::if_any);
    EXPECT_EQ(b2.start_step(), 12);
    b2.run({});
    resumed.insert(resumed.end(), b2.step_losses().begin(), b2.step_losses().end());
  }
  ASSERT_EQ(resumed.size(), 24u);
  for (size_t i = 0; i < 24; ++i) EXPECT_EQ(full[i], resumed[i]) << "step " << i + 1 << " differs after resume";
  const auto ca = latest_intact_checkpoint(run_a), cb = latest_intact_checkpoint(run_b);
  ASSERT_TRUE(ca && cb);
  // One process writes one shard: parameters, AdamW m and v over the whole flat buffer.
  const std::string shard = "shard_00000_of_00001.safetensors";
  EXPECT_FALSE(read_file(fs::path(*ca) / shard).empty());
  EXPECT_TRUE(read_file(fs::path(*ca) / shard) == read_file(fs::path(*cb) / shard))
      << "parameters and optimizer state after 24 straight steps differ from 12 + resume 12";

  // Exact match on the held-out examples: none before finetuning, most after.
  SftReadStats rs;
  const auto all = read_sft_jsonl(data, SftFormat::auto_detect, false, &rs);
  const std::vector<SftExample> val = split_sft_examples(all, 0.15).second;
  ExactMatchOptions eo;
  eo.max_new_tokens = 8;
  ChatModel before = load_chat_model(base_, "", true);
  EXPECT_EQ(before.added_specials, 2);
  EXPECT_EQ(before.model->config().vocab_size, 259);
  EXPECT_EQ(sft_exact_match(*before.model, before.tok, before.tmpl, val, eo).correct, 0u);
  ChatModel after = load_chat_model(run_a, "", true);
  EXPECT_EQ(after.added_specials, 0);  // the run's tokenizer has them
  const ExactMatchResult r = sft_exact_match(*after.model, after.tok, after.tmpl, val, eo);
  EXPECT_EQ(r.total, val.size());
  std::cout << "  exact match on " << r.total << " held-out examples: " << r.correct << "\n";
  EXPECT_GE(r.accuracy(), 0.8) << "first reply: \"" << r.samples[0].reply << "\"";
}

// A base in the single-file format teddy wrote before (an older pretraining run's
// checkpoint) is an init too: the same weights give the same run, bit for bit.
TEST_F(SftTrainerTest, InitFromTheSingleFileFormat) {
  const std::string data = test::make_sft_data(root_);
  const fs::path old_base = root_ / "old_base";
  fs::copy(base_, old_base, fs::copy_options::recursive);
  test::convert_to_single_file((old_base / "checkpoints" / "step_00000100").string());
  ASSERT_TRUE(fs::exists(old_base / "checkpoints" / "step_00000100" / "state.json"));
  SftTrainer a(tiny_config(base_, data, (root_ / "new").string(), {"train.steps=6"}), Resume::no);
  SftTrainer b(tiny_config(old_base.string(), data, (root_ / "old").string(), {"train.steps=6"}), Resume::no);
  a.run({});
  b.run({});
  ASSERT_EQ(a.step_losses().size(), 6u);
  EXPECT_EQ(a.step_losses(), b.step_losses());
}

TEST_F(SftTrainerTest, PaddedBatchingTrainsToo) {
  const std::string data = test::make_sft_data(root_);
  SftTrainer t(tiny_config(base_, data, (root_ / "pad").string(), {"train.batching=pad", "train.steps=12"}), Resume::no);
  t.run({});
  ASSERT_EQ(t.step_losses().size(), 12u);
  EXPECT_LT(t.step_losses().back(), t.step_losses().front());
}

TEST_F(SftTrainerTest, BadLinesStopOrAreSkipped) {
  const std::string data = test::make_sft_data(root_, R"({"messages": [{"role": "robot", "content": "x"}]})");
  try {
    SftTrainer t(tiny_config(base_, data, (root_ / "r").string()), Resume::no);
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(data + ":42: messages[0]: unknown role \"robot\""), std::string::npos) << e.what();
  }
  SftTrainer t(tiny_config(base_, data, (root_ / "r").string(), {"data.skip_bad=true"}), Resume::no);
  EXPECT_EQ(t.data_report().train_read.skipped, 1u);
  EXPECT_EQ(t.data_report().train_read.examples, 80u);
}

TEST(SftConfig, ErrorsNameTheKey) {
  auto msg = [](const std::string& toml, std::vector<std::string> ov = {}) -> std::string {
    try {
      SftConfig c = SftConfig::parse(toml, "sft.toml", ov);
      c.validate();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  const std::string ok = "[model]\ninit = \"runs/x\"\n[data]\ntrain = \"a.jsonl\"\n";
  EXPECT_EQ(msg(ok), "");
  EXPECT_NE(msg("[data]\ntrain = \"a.jsonl\"\n").find("model.init"), std::string::npos);
  EXPECT_NE(msg(ok + "[train]\nbatching = \"stack\"\n").find("train.batching"), std::string::npos);
  EXPECT_NE(msg(ok + "[train]\ntruncation = \"middle\"\n").find("train.truncation"), std::string::npos);
  EXPECT_NE(msg(ok, {"data.format=csv"}).find("data.format"), std::string::npos);
  EXPECT_NE(msg(ok + "[template]\nname = \"vicuna\"\n").find("template.name"), std::string::npos);
  EXPECT_NE(msg(ok + "[template]\nend_of_turn = \"<|x|>\"\n").find("template.end_of_turn"), std::string::npos);
  EXPECT_NE(msg(ok + "[train]\nepohcs = 2\n").find("unknown key \"train.epohcs\""), std::string::npos);
  EXPECT_NE(msg(ok, {"data.val_fraction=1.5"}).find("data.val_fraction"), std::string::npos);
  // A custom template from the config's strings, and the resolved config round-trips.
  SftConfig c = SftConfig::parse(ok + "[template]\nname = \"custom\"\nheader_prefix = \"### \"\nheader_suffix = \":\\n\"\n"
                                      "end_of_turn = \"<|end|>\"\nseparator = \"\\n\"\nspecials = [\"<|end|>\"]\n",
                                 "sft.toml");
  c.validate();
  std::vector<ChatTurn> turns = {{ChatRole::user, "q"}, {ChatRole::assistant, "a"}};
  EXPECT_EQ(c.chat_template.render_text(turns), "### user:\nq<|end|>\n### assistant:\na<|end|>");
  SftConfig d = SftConfig::parse(c.to_toml(), "resolved.toml");
  EXPECT_EQ(d.to_toml(), c.to_toml());
}

TEST_F(SftTrainerTest, RunErrors) {
  const std::string data = test::make_sft_data(root_);
  // seq_len beyond the model's context (gpt2-tiny: 64).
  EXPECT_THROW(SftTrainer(tiny_config(base_, data, (root_ / "x").string(), {"train.seq_len=128"}), Resume::no), ConfigError);
  // warmup longer than the run.
  EXPECT_THROW(SftTrainer(tiny_config(base_, data, (root_ / "x").string(), {"optim.warmup_steps=50"}), Resume::no),
               ConfigError);
  // No checkpoint to start from.
  EXPECT_THROW(SftTrainer(tiny_config((root_ / "nothing").string(), data, (root_ / "x").string()), Resume::no), Error);
  // --resume=require with nothing to resume (plain --resume starts from scratch: ResumeWithoutCheckpointStartsFresh).
  EXPECT_THROW(SftTrainer(tiny_config(base_, data, (root_ / "fresh").string()), Resume::require), Error);
}

// model.init = a run directory whose newest checkpoint is damaged: the run starts
// from the previous one and its start report names the one it passed over and why.
TEST_F(SftTrainerTest, ADamagedInitCheckpointIsNamedWhenSkipped) {
  const std::string data = test::make_sft_data(root_);
  {
    ModelConfig c = ModelConfig::preset("gpt2-tiny");
    c.vocab_size = 257;
    c.padded_vocab_size = ModelConfig::pad_vocab(257);
    Model m(c);
    m.init_weights(10);
    AdamW opt(m.layout(), AdamWConfig{});
    CheckpointState st;
    st.step = 200;
    save_checkpoint(base_, m, opt, st, 0);
  }
  const std::string newest = checkpoint_dir(base_, 200);
  {
    std::fstream io(newest + "/manifest.json", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(40);
    io.put('X');  // a byte of the manifest changed: its checksum no longer matches
  }
  SftTrainer t(tiny_config(base_, data, (root_ / "run").string(), {"train.steps=1", "optim.warmup_steps=0"}), Resume::no);
  std::string start;
  t.run([&](const SftEvent& e) {
    if (e.kind == SftEvent::Kind::start) start = e.text;
  });
  EXPECT_NE(start.find("# init: " + checkpoint_dir(base_, 100)), std::string::npos) << start;
  EXPECT_NE(start.find("# model.init: skipped damaged checkpoint " + newest + ": " + newest +
                       "/manifest.json: checksum mismatch"),
            std::string::npos)
      << start;
}
