// The library job (train/job.h) in one process: one call validates, builds the world
// and the engine and trains, reporting through the observer; errors are thrown
// (teddy::Error subclasses), never printed; a fresh run refuses an earlier run's
// checkpoints unless overwrite (pretraining and SFT alike); `model.init = hf:DIR`
// imports once and says so. Under mpirun the same calls are exercised by
// tests/distributed/test_pretrain_dist.cpp and test_sft_dist.cpp through `teddy`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_test_util.h"
#include "train/sft_test_util.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/core/error.h"
#include "teddy/data/prepare.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/train/job.h"
#include "train/word_dataset.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

// Records what a job reported.
struct Recorder final : JobObserver {
  std::vector<TrainEvent::Kind> kinds;
  std::vector<std::string> notes;
  std::string start;
  int failures = 0;
  int steps() const { return static_cast<int>(std::count(kinds.begin(), kinds.end(), TrainEvent::Kind::step)); }
  void on_event(const TrainEvent& e) override {
    kinds.push_back(e.kind);
    if (e.kind == TrainEvent::Kind::start) start = e.text;
  }
  void on_note(const std::string& line) override { notes.push_back(line); }
  int on_rank_failure(const RankFailure&) override {
    ++failures;  // never in one process: errors are thrown
    return 1;
  }
};

std::string make_dataset(const fs::path& root) { return test::make_word_dataset(root, 4, 600); }

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("teddy_job_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  PretrainConfig pretrain(const std::string& run, int steps, std::vector<std::string> ov = {}) {
    if (dataset_.empty()) dataset_ = make_dataset(root_);
    ov.push_back("data.dataset=" + dataset_);
    ov.push_back("run.dir=" + (root_ / run).string());
    ov.push_back("train.steps=" + std::to_string(steps));
    return PretrainConfig::parse(
        "[model]\npreset = \"gpt2-tiny\"\n[train]\nmicro_batch = 2\nseq_len = 16\nthreads = 1\n"
        "[optim]\nwarmup_steps = 1\n[eval]\ninterval = 2\nbatches = 1\n[checkpoint]\ninterval = 2\nkeep = 0\n"
        "[run]\npeak_gflops = 100\n",
        "job.toml", ov);
  }
  SftConfig sft(const std::string& init, const std::string& run, std::vector<std::string> ov = {}) {
    if (sft_data_.empty()) sft_data_ = test::make_sft_data(root_);
    ov.push_back("model.init=" + init);
    ov.push_back("data.train=" + sft_data_);
    ov.push_back("run.dir=" + (root_ / run).string());
    return SftConfig::parse(
        "[data]\nval_fraction = 0.1\n[train]\nmicro_batch = 2\nseq_len = 32\nsteps = 4\nthreads = 1\n"
        "[optim]\nwarmup_steps = 1\n[eval]\ninterval = 2\nbatches = 1\n[checkpoint]\ninterval = 2\nkeep = 0\n"
        "[run]\npeak_gflops = 100\n",
        "sft.toml", ov);
  }
  fs::path root_;
  std::string dataset_, sft_data_;
};

}  // namespace

TEST_F(JobTest, OneCallRunsAPretrainingJobAndReportsThroughTheObserver) {
  Recorder r;
  run_pretrain_job(pretrain("run", 4), JobOptions{}, r);
  ASSERT_FALSE(r.kinds.empty());
  EXPECT_EQ(r.kinds.front(), TrainEvent::Kind::start);
  EXPECT_EQ(r.kinds.back(), TrainEvent::Kind::end);
  EXPECT_EQ(r.steps(), 4);
  EXPECT_EQ(std::count(r.kinds.begin(), r.kinds.end(), TrainEvent::Kind::checkpoint), 2);  // steps 2 and 4
  EXPECT_NE(r.start.find("# model: gpt2"), std::string::npos) << r.start;
  EXPECT_EQ(r.failures, 0);
  EXPECT_EQ(list_checkpoints((root_ / "run").string()).size(), 2u);
}

// A bad value is thrown (ConfigError) before anything exists: no world, no run.dir.
// Other errors are thrown as teddy::Error; the observer's failure hook is for jobs of
// several ranks only.
TEST_F(JobTest, ErrorsAreThrownNotPrinted) {
  Recorder r;
  EXPECT_THROW(run_pretrain_job(pretrain("bad", 4, {"optim.lr=-1"}), JobOptions{}, r), ConfigError);
  EXPECT_THROW(run_pretrain_job(pretrain("bad", 4, {"train.precision=fp8"}), JobOptions{}, r), ConfigError);
  EXPECT_FALSE(fs::exists(root_ / "bad"));
  EXPECT_THROW(run_sft_job(sft((root_ / "no_such_base").string(), "bad_sft"), JobOptions{}, r), Error);
  JobOptions require;
  require.resume = Resume::require;
  EXPECT_THROW(run_pretrain_job(pretrain("fresh", 4), require, r), Error);
  EXPECT_EQ(r.failures, 0);
  EXPECT_TRUE(r.kinds.empty());
}

// `--overwrite`, the same for `teddy pretrain` and `teddy sft`: a fresh run (no
// --resume) in a run.dir with checkpoints is refused, naming the newest and the ways
// out; overwrite deletes them and starts over; --resume continues instead.
TEST_F(JobTest, AFreshRunRefusesEarlierCheckpointsUnlessOverwrite) {
  const std::string base = test::make_sft_base(root_);
  for (const bool is_sft : {false, true}) {
    SCOPED_TRACE(is_sft ? "sft" : "pretrain");
    const std::string run = is_sft ? "sft_run" : "pre_run";
    auto job = [&](const JobOptions& o, int steps) {
      Recorder r;
      if (is_sft)
        run_sft_job(sft(base, run, {"train.steps=" + std::to_string(steps)}), o, r);
      else
        run_pretrain_job(pretrain(run, steps), o, r);
      return r;
    };
    JobOptions stop;
    stop.stop_after = 4;
    job(stop, 6);
    ASSERT_EQ(list_checkpoints((root_ / run).string()).size(), 2u);  // steps 4 and 2
    try {
      job(JobOptions{}, 6);
      FAIL() << "a fresh run over an earlier run's checkpoints must be refused";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("holds checkpoints of an earlier run (newest "), std::string::npos) << msg;
      EXPECT_NE(msg.find("step_00000004"), std::string::npos) << msg;
      EXPECT_NE(msg.find("--overwrite"), std::string::npos) << msg;
    }
    EXPECT_EQ(list_checkpoints((root_ / run).string()).size(), 2u);  // untouched

    JobOptions resume;
    resume.resume = Resume::if_any;
    EXPECT_EQ(job(resume, 6).steps(), 2);  // steps 5 and 6

    JobOptions overwrite;
    overwrite.overwrite = true;
    const Recorder fresh = job(overwrite, 2);
    EXPECT_EQ(fresh.steps(), 2);
    const auto left = list_checkpoints((root_ / run).string());
    ASSERT_EQ(left.size(), 1u);  // the new run's step 2 only: steps 4 and 6 of the old run are gone
    EXPECT_EQ(fs::path(left[0]).filename(), "step_00000002");
  }
}

// model.init = hf:DIR: imported into run.dir/hf_base once, reported as a note before
// the start event; a second run reuses the import.
TEST_F(JobTest, AnHfModelIsImportedOnceAndNoted) {
  const std::string base = test::make_sft_base(root_);
  export_hf(base, (root_ / "hf").string(), {});
  const std::string hf = "hf:" + (root_ / "hf").string();
  Recorder a;
  run_sft_job(sft(hf, "run"), JobOptions{}, a);
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_EQ(a.notes[0], "model.init " + hf + ": imported into " + (root_ / "run" / "hf_base").string());
  EXPECT_EQ(a.steps(), 4);
  EXPECT_NE(a.start.find("# init: " + (root_ / "run" / "hf_base").string()), std::string::npos) << a.start;
  JobOptions overwrite;
  overwrite.overwrite = true;  // hf_base is not a checkpoint: it stays
  Recorder b;
  run_sft_job(sft(hf, "run"), overwrite, b);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0], "model.init " + hf + ": reusing the import in " + (root_ / "run" / "hf_base").string());
}

// Continued pretraining of an imported run (run.dir = the import, --resume) keeps its
// hf_extras.json: the export of the continued run writes the imported
// generation_config again. The model is a Qwen2 with Llama 3.1 RoPE scaling, which the
// [model] keys describe (model.qkv_bias, model.rope_scaling, ...), so the TOML's model
// equals the imported checkpoint's.
TEST_F(JobTest, AnImportedRunsHfExtrasSurvivePretrainingContinuation) {
  const std::vector<std::string> model = {"model.preset=\"llama-tiny\"", "model.qkv_bias=true",
                                          "model.rope_scaling=\"llama3\"",
                                          "model.rope_original_max_position_embeddings=64"};
  Recorder r0;
  run_pretrain_job(pretrain("pre", 2, model), JobOptions{}, r0);
  const fs::path hf = root_ / "hf";
  export_hf((root_ / "pre").string(), hf.string(), {});
  nlohmann::json gen = nlohmann::json::parse(test::read_file((hf / "generation_config.json").string()));
  gen["temperature"] = 0.7;
  std::ofstream((hf / "generation_config.json").string(), std::ios::trunc) << gen.dump(2);
  import_hf(hf.string(), (root_ / "imported").string());
  JobOptions resume;
  resume.resume = Resume::require;
  Recorder r;
  run_pretrain_job(pretrain("imported", 4, model), resume, r);
  EXPECT_EQ(r.steps(), 4);
  const auto cfg = nlohmann::json::parse(test::read_file((hf / "config.json").string()));
  EXPECT_EQ(cfg["model_type"], "qwen2");
  EXPECT_EQ(cfg["rope_scaling"]["rope_type"], "llama3");
  const fs::path out = root_ / "out";
  export_hf((root_ / "imported").string(), out.string(), {});
  const auto got = nlohmann::json::parse(test::read_file((out / "generation_config.json").string()));
  EXPECT_EQ(got.value("temperature", 0.0), 0.7) << got.dump();
}

// An imported model's extras (tokenizer_config keys, generation_config, config.json's
// token ids) survive finetuning: `export hf` of the SFT run writes them again, with the
// run's own chat template (the imported Jinja is not one teddy trained with) and its
// end-of-turn token added to generation_config's eos ids.
TEST_F(JobTest, AnImportedModelsHfExtrasSurviveFinetuning) {
  const std::string base = test::make_sft_base(root_);
  const fs::path hf = root_ / "hf";
  export_hf(base, hf.string(), {});
  auto edit = [&](const char* file, const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json j = nlohmann::json::parse(test::read_file((hf / file).string()));
    f(j);
    std::ofstream((hf / file).string(), std::ios::trunc) << j.dump(2);
  };
  edit("generation_config.json", [](nlohmann::json& j) {
    j["temperature"] = 0.6;
    j["top_p"] = 0.9;
  });
  edit("tokenizer_config.json", [](nlohmann::json& j) {
    j["model_max_length"] = 12345;
    j["chat_template"] = "{{ messages[0]['content'] }}";  // not a template teddy renders
  });
  Recorder r;
  run_sft_job(sft("hf:" + hf.string(), "run"), JobOptions{}, r);
  ASSERT_TRUE(fs::exists(root_ / "run" / "hf_extras.json"));
  const fs::path out = root_ / "out";
  export_hf((root_ / "run").string(), out.string(), {});
  const auto gen = nlohmann::json::parse(test::read_file((out / "generation_config.json").string()));
  EXPECT_EQ(gen.value("temperature", 0.0), 0.6) << gen.dump();
  EXPECT_EQ(gen.value("top_p", 0.0), 0.9) << gen.dump();
  const auto tc = nlohmann::json::parse(test::read_file((out / "tokenizer_config.json").string()));
  EXPECT_EQ(tc.value("model_max_length", 0), 12345) << tc.dump();
  // The run trained with chatml: that is the template published, and <|im_end|> stops generation.
  EXPECT_NE(tc.value("chat_template", std::string()).find("<|im_start|>"), std::string::npos) << tc.dump();
  const auto vocab = nlohmann::json::parse(test::read_file((out / "tokenizer.json").string()))["added_tokens"];
  int im_end = -1;
  for (const auto& t : vocab)
    if (t["content"] == "<|im_end|>") im_end = t["id"];
  ASSERT_GE(im_end, 0);
  const nlohmann::json eos = gen["eos_token_id"];
  EXPECT_TRUE(eos.is_array() && std::find(eos.begin(), eos.end(), nlohmann::json(im_end)) != eos.end()) << eos;
}
