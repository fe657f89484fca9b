// `teddy sft` with a [lora] section, end to end on the tiny SFT task: only the adapters
// are trained and checkpointed (the shard's flat buffer is the adapters' layout), the
// loss falls, a run stopped at step 12 and resumed equals the straight run bit for bit
// (dropout on: the masks follow the step), and the run's checkpoint loads for
// generation as base + adapters folded in, answering the held-out prompts.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <cmath>
#include <cstring>

#include "train/sft_test_util.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/train/grow_vocab.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/core/error.h"
#include "teddy/eval/sft_exact_match.h"
#include "teddy/kernels/backend.h"
#include "teddy/train/chat_model.h"
#include "teddy/train/lora_run.h"
#include "teddy/train/sft_trainer.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

SftConfig lora_config(const std::string& base, const std::string& data, const std::string& run_dir,
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
lr = 3e-2
warmup_steps = 3
[eval]
interval = 8
[checkpoint]
interval = 8
keep = 5
[run]
peak_gflops = 100
[lora]
r = 8
alpha = 16
dropout = 0.05
)", "test.toml", ov);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

class SftLoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("teddy_sft_lora_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    base_ = test::make_lora_sft_base(root_);
  }

  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::string base_;
};

}  // namespace

TEST_F(SftLoraTest, TrainsAdaptersResumesExactlyAndAnswers) {
  const std::string data = test::make_sft_data(root_);
  const std::string run_a = (root_ / "a").string(), run_b = (root_ / "b").string();
  std::vector<double> full;
  {
    SftTrainer a(lora_config(base_, data, run_a), Resume::no);
    ASSERT_NE(a.model().lora(), nullptr);
    for (const ParamInfo& p : a.model().layout().params) EXPECT_NE(p.name.find(".lora_"), std::string::npos);
    a.run({});
    full = a.step_losses();
  }
  ASSERT_EQ(full.size(), 24u);
  std::cout << "  LoRA training loss " << full.front() << " -> " << full.back() << "\n";
  EXPECT_LT(full.back(), 0.5 * full.front()) << "the LoRA SFT loss should fall on this easy task";
  EXPECT_TRUE(fs::exists(fs::path(run_a) / "lora.json"));

  std::vector<double> resumed;
  {
    SftTrainer b(lora_config(base_, data, run_b), Resume::no);
    b.run({}, 12);
    resumed = b.step_losses();
  }
  {
    SftTrainer b2(lora_config(base_, data, run_b), Resume::if_any);
    EXPECT_EQ(b2.start_step(), 12);
    b2.run({});
    resumed.insert(resumed.end(), b2.step_losses().begin(), b2.step_losses().end());
  }
  ASSERT_EQ(resumed.size(), 24u);
  for (size_t i = 0; i < 24; ++i) EXPECT_EQ(full[i], resumed[i]) << "step " << i + 1 << " differs after resume";
  const auto ca = latest_intact_checkpoint(run_a), cb = latest_intact_checkpoint(run_b);
  ASSERT_TRUE(ca && cb);
  const std::string shard = "shard_00000_of_00001.safetensors";
  EXPECT_TRUE(read_file(fs::path(*ca) / shard) == read_file(fs::path(*cb) / shard));
  // The checkpoint is the adapters' (small): far below the base's.
  EXPECT_LT(fs::file_size(fs::path(*ca) / shard) * 4, fs::file_size(fs::path(*latest_intact_checkpoint(base_)) / shard));

  // Generation loads base + adapters; the held-out prompts are answered.
  SftReadStats rs;
  const auto all = read_sft_jsonl(data, SftFormat::auto_detect, false, &rs);
  const std::vector<SftExample> val = split_sft_examples(all, 0.15).second;
  ExactMatchOptions eo;
  eo.max_new_tokens = 8;
  ChatModel after = load_chat_model(run_a, "", true);
  EXPECT_EQ(after.model->lora(), nullptr);  // folded in
  EXPECT_EQ(after.added_specials, 0);
  {
    // The loaded model is the trained one: its logits equal the trainer's base +
    // adapters (unmerged) within 1e-5 relative (one rounding per folded weight).
    SftTrainer t(lora_config(base_, data, run_a), Resume::if_any);
    ASSERT_EQ(t.start_step(), 24);
    std::vector<int32_t> toks(20);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>((i * 37) % 250);
    const Batch b{toks.data(), nullptr, nullptr, nullptr, 1, 20};
    const int Vp = after.model->config().padded_vocab_size;
    std::vector<float> z1(20 * static_cast<size_t>(Vp)), z2(z1.size());
    t.model().forward(b, z1.data());
    after.model->forward(b, z2.data());
    double num = 0, den = 0;
    for (size_t i = 0; i < z1.size(); ++i) {
      num += (z1[i] - z2[i]) * static_cast<double>(z1[i] - z2[i]);
      den += z1[i] * static_cast<double>(z1[i]);
    }
    EXPECT_LE(std::sqrt(num / den), 1e-5);
  }
  const ExactMatchResult r = sft_exact_match(*after.model, after.tok, after.tmpl, val, eo);
  std::cout << "  LoRA exact match on " << r.total << " held-out examples: " << r.correct << "\n";
  EXPECT_GE(r.accuracy(), 0.8) << "first reply: \"" << r.samples[0].reply << "\"";
}

// QLoRA: the same run over an NF4 base (blocks' linears in 4 bits, read a tile at a
// time) learns the task too, and its checkpoint loads for generation (the base
// quantized again from the same checkpoint, deterministically, then dequantized into
// the merged model).
TEST_F(SftLoraTest, QloraOverAnNf4BaseLearns) {
  const std::string data = test::make_sft_data(root_);
  const std::string run = (root_ / "q").string();
  std::vector<double> losses;
  {
    SftTrainer a(lora_config(base_, data, run, {"lora.quantize=nf4"}), Resume::no);
    ASSERT_NE(a.model().lora(), nullptr);
    EXPECT_EQ(a.model().lora()->quantize, "nf4");
    // lora.compute auto: the base's products in bf16 where this CPU has them natively.
    const bool native = kernels::gemm_backend(kernels::Gemm::onednn, DType::bf16).gemm_inputs == DType::bf16;
    EXPECT_EQ(a.model().context().ops().gemm_inputs, native ? DType::bf16 : DType::f32);
    a.run({});
    losses = a.step_losses();
  }
  std::cout << "  QLoRA (nf4) training loss " << losses.front() << " -> " << losses.back() << "\n";
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  SftReadStats rs;
  const auto all = read_sft_jsonl(data, SftFormat::auto_detect, false, &rs);
  const std::vector<SftExample> val = split_sft_examples(all, 0.15).second;
  ExactMatchOptions eo;
  eo.max_new_tokens = 8;
  ChatModel after = load_chat_model(run, "", true);
  const ExactMatchResult r = sft_exact_match(*after.model, after.tok, after.tmpl, val, eo);
  std::cout << "  QLoRA exact match on " << r.total << " held-out examples: " << r.correct << "\n";
  EXPECT_GE(r.accuracy(), 0.8);
}

TEST_F(SftLoraTest, BadLoraKeysNameTheField) {
  const std::string data = test::make_sft_data(root_);
  auto msg = [&](std::vector<std::string> ov) {
    try {
      SftTrainer t(lora_config(base_, data, (root_ / "x").string(), std::move(ov)), Resume::no);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg({"lora.r=0"}).find("lora.r"), std::string::npos);
  EXPECT_NE(msg({"lora.r=-2"}).find("lora.r"), std::string::npos);
  EXPECT_NE(msg({"lora.targets=q_proj"}).find("lora.targets: unknown target 'q_proj'"), std::string::npos);
  EXPECT_NE(msg({"lora.quantize=fp8"}).find("lora.quantize"), std::string::npos);
  EXPECT_NE(msg({"lora.compute=fp8"}).find("lora.compute: unknown 'fp8'"), std::string::npos);
  EXPECT_NE(msg({"lora.quantize=nf4", "train.gemm=openblas", "lora.compute=bf16"}).find("lora.compute: bf16 products"),
            std::string::npos);
  EXPECT_NE(msg({"lora.dropout=1.5"}).find("lora.dropout"), std::string::npos);
  EXPECT_NE(msg({"lora.alpha=\"x\""}).find("lora.alpha"), std::string::npos);
  EXPECT_EQ(msg({"lora.targets=c_attn, mlp.c_proj"}), "no error");
}

// The base read from the checkpoint straight into its storage (load_chat_model with a
// [lora] config: Model::with_lora over read_checkpoint_range) is the model that loading
// in fp32 and enable_lora give: the same base tensors bit for bit, the same base bytes,
// the same adapters, for an fp32 and an NF4 base.
TEST_F(SftLoraTest, BaseLoadsStraightIntoItsStorage) {
  for (const char* q : {"none", "nf4"}) {
    SCOPED_TRACE(q);
    LoraConfig l;
    l.r = 4;
    l.quantize = q;
    ChatModel direct = load_chat_model(base_, "", true, nullptr, &l, 5);
    ASSERT_NE(direct.model->lora(), nullptr);
    EXPECT_EQ(direct.added_specials, 0);
    ChatModel loaded = load_chat_model(base_, "", true);
    ASSERT_EQ(loaded.model->lora(), nullptr);
    loaded.model->enable_lora(l, 5);
    EXPECT_EQ(direct.model->base_bytes(), loaded.model->base_bytes());
    ASSERT_EQ(direct.model->flat_size(), loaded.model->flat_size());
    EXPECT_EQ(0, std::memcmp(direct.model->params(), loaded.model->params(), direct.model->flat_size() * sizeof(float)));
    const ModelConfig& c = direct.model->config();
    for (const ParamInfo& p : make_param_layout(c).params) {
      if (c.tie_embeddings && p.name == "lm_head.weight") continue;
      std::vector<float> a(p.numel), b(p.numel);
      direct.model->base_weight(p.name, a.data());
      loaded.model->base_weight(p.name, b.data());
      EXPECT_EQ(a, b) << p.name;
    }
  }
}
