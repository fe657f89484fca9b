// The SFT loss mask against PyTorch (tests/reference/sft_reference.py): teddy's
// gradient on packed and on padded micro-batches, with the ignore index everywhere
// but the answers, equals the gradient of the mean cross-entropy over the answer
// tokens alone, each conversation run on its own. The reference finds the answer
// tokens itself from the ChatML markers; its positions are also compared with
// teddy's mask. Like test_vs_pytorch, it needs /usr/bin/python3 with torch (no skip).
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "teddy/data/chat_template.h"
#include "teddy/data/sft_dataset.h"
#include "teddy/io/safetensors.h"
#include "teddy/model/model.h"
#include "teddy/train/sft_batches.h"
#include "teddy/train/train_step.h"

using namespace teddy;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny_config(Family f) {
  ModelConfig c = ModelConfig::for_family(f);
  c.vocab_size = 259;  // bytes, <|endoftext|>, <|im_start|>, <|im_end|>
  c.padded_vocab_size = 320;
  c.max_seq_len = 96;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = f == Family::gpt2 ? 4 : 2;
  c.d_model = 32;
  c.d_ff = f == Family::gpt2 ? 128 : 40;
  c.validate();
  return c;
}

std::vector<SftExample> examples() {
  const char* lines[] = {
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]})",
      R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}, {"role": "assistant", "content": "see you"}]})",
      R"({"prompt": "Capital of Zorbia?", "completion": "Quelm"})",
      R"({"instruction": "Reverse", "input": "abc", "output": "cba"})",
      R"({"prompt": "List 3", "completion": "1, 2, 3"})",
      R"({"instruction": "Say yes", "output": "yes"})",
      R"({"prompt": "Spell cat", "completion": "c-a-t"})"};
  std::vector<SftExample> out;
  uint64_t n = 0;
  for (const char* l : lines) out.push_back(parse_sft_line(l, SftFormat::auto_detect, "inline", ++n));
  return out;
}

std::vector<double> as_doubles(const SafetensorsFile& f, const std::string& name) {
  const SafeTensor& t = f.get(name);
  std::vector<double> r(static_cast<size_t>(t.numel()));
  if (t.dtype == "F64") {
    std::memcpy(r.data(), t.bytes.data(), r.size() * 8);
  } else if (t.dtype == "I32") {
    std::vector<int32_t> tmp(r.size());
    std::memcpy(tmp.data(), t.bytes.data(), r.size() * 4);
    std::copy(tmp.begin(), tmp.end(), r.begin());
  } else {
    const std::vector<float> tmp = f.to_f32(name);
    std::copy(tmp.begin(), tmp.end(), r.begin());
  }
  return r;
}

struct Case {
  Family family;
  std::unique_ptr<Model> model;
  Tokenizer tok;
  SftDataset ds;
  std::string in_path, out_path;
};

// The gradient of train_step's first step (before the update) for the dataset laid
// out in `mode`, micro-batches of `rows_per_micro` rows.
std::vector<float> teddy_gradient(Case& c, SftBatching mode, size_t rows_per_micro, double* loss, int64_t* count) {
  std::vector<uint32_t> order(c.ds.size());
  std::iota(order.begin(), order.end(), 0u);
  const std::vector<SftRow> rows = plan_sft_rows(c.ds, order, mode);
  std::vector<SftMicroBatch> micro;
  for (size_t at = 0; at < rows.size(); at += rows_per_micro) {
    micro.emplace_back();
    fill_sft_micro_batch(c.ds, std::span<const SftRow>(rows.data() + at, std::min(rows_per_micro, rows.size() - at)),
                         mode, micro.back());
  }
  EXPECT_GE(micro.size(), 2u) << "the case should accumulate over micro-batches";
  int64_t total = 0;
  for (const auto& m : micro) total += count_targets(m.batch());
  Model& model = *c.model;
  model.zero_grad();
  LossSum sum;
  for (const auto& m : micro) {
    const LossSum l = model.forward_backward(m.batch(), static_cast<float>(1.0 / static_cast<double>(total)));
    sum.sum += l.sum;
    sum.count += l.count;
  }
  *loss = sum.mean();
  *count = total;
  return std::vector<float>(model.grads(), model.grads() + model.flat_size());
}

class SftVsPyTorch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string cmd = "/usr/bin/python3 '" + std::string(TEDDY_SOURCE_DIR) + "/tests/reference/sft_reference.py'";
    // Per process: ctest runs each test of this suite as its own process, in parallel,
    // and two of them writing the same reference files raced.
    const fs::path dir = fs::path(TEDDY_BINARY_DIR) / "test_sft_vs_pytorch" / std::to_string(::getpid());
    fs::create_directories(dir);
    for (Family f : {Family::gpt2, Family::llama}) {
      Case c;
      c.family = f;
      c.model = std::make_unique<Model>(tiny_config(f));
      c.model->init_weights(f == Family::gpt2 ? 21 : 22);
      c.tok = Tokenizer::bytes();
      add_template_specials(c.tok, ChatTemplate{});
      SftDatasetOptions o;
      o.seq_len = 96;
      c.ds = SftDataset(examples(), c.tok, ChatTemplate{}, o);
      const std::string name(family_name(f));
      c.in_path = (dir / (name + "_in.safetensors")).string();
      c.out_path = (dir / (name + "_out.safetensors")).string();
      fs::remove(c.out_path);
      SafetensorsWriter w;
      for (const ParamInfo& p : c.model->layout().params) w.add_f32("param." + p.name, p.shape, c.model->params() + p.offset);
      for (size_t i = 0; i < c.ds.size(); ++i)
        w.add_copy("ex." + std::to_string(i), "I32", {static_cast<int64_t>(c.ds[i].tokens.size())},
                   c.ds[i].tokens.data(), c.ds[i].tokens.size() * 4);
      const ModelConfig& m = c.model->config();
      w.set_metadata("config", nlohmann::json{{"family", name}, {"vocab_size", m.vocab_size},
                                              {"n_layer", m.n_layer}, {"n_head", m.n_head},
                                              {"n_kv_head", m.n_kv_head}, {"d_model", m.d_model},
                                              {"norm_eps", m.norm_eps}, {"rope_theta", m.rope_theta},
                                              {"tie_embeddings", m.tie_embeddings}, {"bias", m.bias}}
                                   .dump());
      std::vector<int32_t> assistant;
      for (char ch : std::string("assistant\n")) assistant.push_back(static_cast<unsigned char>(ch));
      w.set_metadata("markers", nlohmann::json{{"im_start", c.tok.special_id("<|im_start|>")},
                                               {"im_end", c.tok.special_id("<|im_end|>")},
                                               {"assistant", assistant}}
                                    .dump());
      w.write(c.in_path);
      cmd += " '" + c.in_path + "' '" + c.out_path + "'";
      cases_.push_back(std::move(c));
    }
    const std::string log = (dir / "reference.log").string();
    cmd += " > '" + log + "' 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream f(log);
      error_ = "the PyTorch reference failed (needs /usr/bin/python3 with torch and numpy; no skip).\ncommand: " + cmd +
               "\noutput:\n" + std::string((std::istreambuf_iterator<char>(f)), {});
    }
  }
  static void TearDownTestSuite() {
    if (error_.empty() && !cases_.empty())  // kept for a look when the reference failed
      fs::remove_all(fs::path(cases_[0].in_path).parent_path());
    cases_.clear();
  }

  void check(Family f, SftBatching mode, size_t rows_per_micro) {
    ASSERT_TRUE(error_.empty()) << error_;
    Case& c = cases_[f == Family::gpt2 ? 0 : 1];
    const SafetensorsFile ref = SafetensorsFile::open(c.out_path);
    // The reference found the same answer tokens as teddy's mask.
    for (size_t i = 0; i < c.ds.size(); ++i) {
      const auto want = as_doubles(ref, "answer_positions." + std::to_string(i));
      std::vector<double> got;
      for (size_t j = 0; j < c.ds[i].loss.size(); ++j)
        if (c.ds[i].loss[j]) got.push_back(static_cast<double>(j));
      EXPECT_EQ(got, want) << "example " << i << ": loss positions differ from the reference's answer tokens";
    }
    double loss = 0;
    int64_t count = 0;
    const std::vector<float> g = teddy_gradient(c, mode, rows_per_micro, &loss, &count);
    EXPECT_EQ(count, static_cast<int64_t>(as_doubles(ref, "count")[0]));
    const double want_loss = as_doubles(ref, "loss")[0];
    EXPECT_NEAR(loss, want_loss, 1e-5 * want_loss);
    double worst = 0;
    std::string worst_name;
    for (const ParamInfo& p : c.model->layout().params) {
      const auto want = as_doubles(ref, "grad." + p.name);
      ASSERT_EQ(want.size(), p.numel);
      double num = 0, den = 0;
      for (size_t i = 0; i < p.numel; ++i) {
        const double d = g[p.offset + i] - want[i];
        num += d * d;
        den += want[i] * want[i];
      }
      const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
      EXPECT_LE(rel, 1e-4) << p.name;
      if (rel > worst) worst = rel, worst_name = p.name;
    }
    std::cout << "  " << family_name(f) << " " << sft_batching_name(mode) << ": loss " << loss << " (torch " << want_loss
              << "), " << count << " answer tokens; worst gradient rel err " << worst << " (" << worst_name << ")\n";
  }

  static inline std::vector<Case> cases_;
  static inline std::string error_;
};

}  // namespace

TEST_F(SftVsPyTorch, Gpt2Packed) { check(Family::gpt2, SftBatching::pack, 2); }
TEST_F(SftVsPyTorch, LlamaPacked) { check(Family::llama, SftBatching::pack, 2); }
TEST_F(SftVsPyTorch, Gpt2Padded) { check(Family::gpt2, SftBatching::pad, 3); }
TEST_F(SftVsPyTorch, LlamaPadded) { check(Family::llama, SftBatching::pad, 3); }
