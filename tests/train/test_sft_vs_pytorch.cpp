// The SFT loss mask against PyTorch (tests/reference/sft_reference.py): teddy's
// gradient on packed and on padded micro-batches, with the ignore index everywhere
// but the answers, equals the gradient of the mean cross-entropy over the answer
// tokens alone, each conversation run on its own. The reference finds the answer
// tokens itself from the ChatML markers; its positions are also compared with
// teddy's mask. Like test_vs_pytorch, it needs /usr/bin/python3 with torch (no skip).
// The reference computes in float32 and float64; teddy is held to twice torch32's
// distance from float64 (the rule of model/model_f64.h), and its loss to a bound from
// its logits' measured error (test_vs_pytorch.cpp): no tolerance from one machine.
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

#include "model/model_f64.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/dataset.h"
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
// out in `mode`, micro-batches of `rows_per_micro` rows; and what the loss bound needs
// from the logits of those micro-batches (test_vs_pytorch.cpp derives it): the mean over
// answer tokens of 2 max_j |z_j - z64_j| against the float64 twin (model/model_f64.h),
// and of the cross-entropy kernel's rounding, eps ((V - 1)/2 + 1 + range/2).
struct TeddyRun {
  std::vector<float> grads;
  double loss = 0, zerr = 0, kernel = 0;
  double twin_loss = 0, twin_kernel = 0;  // the twin's mean loss, and kernel with eps64
  int64_t count = 0;
};
TeddyRun teddy_gradient(Case& c, SftBatching mode, size_t rows_per_micro) {
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
  TeddyRun r;
  for (const auto& m : micro) r.count += count_targets(m.batch());
  Model& model = *c.model;
  model.zero_grad();
  LossSum sum;
  for (const auto& m : micro) {
    const LossSum l = model.forward_backward(m.batch(), static_cast<float>(1.0 / static_cast<double>(r.count)));
    sum.sum += l.sum;
    sum.count += l.count;
  }
  r.loss = sum.mean();
  r.grads.assign(model.grads(), model.grads() + model.flat_size());
  const int V = model.config().vocab_size, Vp = model.config().padded_vocab_size;
  for (const auto& m : micro) {
    const Batch b = m.batch();
    std::vector<float> z(static_cast<size_t>(b.B) * b.T * Vp);
    model.forward(b, z.data());
    const test::F64Pass tw = test::f64_pass(model, b, true, false);
    r.twin_loss += tw.loss_sum / static_cast<double>(r.count);
    for (size_t row = 0; row < static_cast<size_t>(b.B) * b.T; ++row) {
      if (b.targets[row] == kIgnoreIndex) continue;
      double e = 0, lo = INFINITY, hi = -INFINITY;
      for (int v = 0; v < V; ++v) {
        const double x = z[row * Vp + v];
        e = std::max(e, std::fabs(x - tw.logits[row * Vp + v]));
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
      r.zerr += 2 * e / static_cast<double>(r.count);
      r.kernel += test::kEpsF32 * ((V - 1) / 2.0 + 1 + (hi - lo) / 2) / static_cast<double>(r.count);
      r.twin_kernel += test::kEpsF64 * ((V - 1) / 2.0 + 1 + (hi - lo) / 2) / static_cast<double>(r.count);
    }
  }
  return r;
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
    const TeddyRun r = teddy_gradient(c, mode, rows_per_micro);
    EXPECT_EQ(r.count, static_cast<int64_t>(as_doubles(ref, "count")[0]));
    // The loss: within 2 max |logits error| per answer token (the forward's logits against
    // the float64 twin, twice for forward_backward's chunked classifier GEMM) plus the
    // cross-entropy kernel's rounding and storing the loss (test_vs_pytorch.cpp derives
    // both), of the float64 reference's. A token too many or too few in the mask moves
    // the mean by ~|loss_token - loss| / count, 1e-2 here.
    const double loss32 = as_doubles(ref, "loss")[0], loss64 = as_doubles(ref, "f64.loss")[0];
    const double loss_bound = 2 * r.zerr + r.kernel + test::kEpsF32 / 2 * loss64;
    EXPECT_LE(std::fabs(r.loss - loss64), loss_bound) << "loss: teddy " << r.loss << " torch32 " << loss32
                                                      << " torch64 " << loss64;
    // The float64 twin, which measured the logits error above, runs the packed and padded
    // rows with document masks and restarting positions: its loss must be the
    // reference's, within the same bound at float64's eps (its logits error is fp32's
    // scaled by eps64/eps32 = 2^-29, at most 2x, as test_vs_pytorch checks on plain rows).
    const double twin_bound = 2 * (test::kEpsF64 / test::kEpsF32) * 2 * r.zerr + r.twin_kernel + test::kEpsF64 * loss64;
    EXPECT_LE(std::fabs(r.twin_loss - loss64), twin_bound) << "float64 twin's loss " << r.twin_loss;
    // Gradients: ||teddy - torch64|| <= 2 ||torch32 - torch64|| + eps ||torch64|| (the rule
    // of model/model_f64.h), each matrix on its own; the vectors (norm weights, biases:
    // C = 32 to 128 entries, too few for the ratio of two rounding errors to be near 1)
    // pooled into one.
    test::Dist pooled;
    double worst = 0;
    std::string worst_name;
    auto check = [&](const test::Dist& d, const std::string& what) {
      EXPECT_LE(d.x_abs, d.bound()) << what << ": " << d.x_abs << " from float64, plain fp32 " << d.p_abs;
      if (d.used() > worst) worst = d.used(), worst_name = what;
    };
    for (const ParamInfo& p : c.model->layout().params) {
      const auto want = as_doubles(ref, "grad." + p.name), want64 = as_doubles(ref, "f64.grad." + p.name);
      ASSERT_EQ(want.size(), p.numel);
      ASSERT_EQ(want64.size(), p.numel);
      const test::Dist d = test::dist(r.grads.data() + p.offset, want.data(), want64.data(), p.numel);
      if (p.shape.size() == 1)
        pooled.add(d);
      else
        check(d, p.name);
    }
    check(pooled, "the vectors");
    std::cout << "  " << family_name(f) << " " << sft_batching_name(mode) << ": loss " << r.loss << " (torch64 "
              << loss64 << ", " << std::fabs(r.loss - loss64) / loss_bound << " of its bound; twin off by " << std::fabs(r.twin_loss - loss64) / twin_bound
              << " of its bound), " << r.count << " answer tokens; gradients used at most "
              << worst << " of their bound (" << worst_name << ")\n";
  }

  static inline std::vector<Case> cases_;
  static inline std::string error_;
};

}  // namespace

TEST_F(SftVsPyTorch, Gpt2Packed) { check(Family::gpt2, SftBatching::pack, 2); }
TEST_F(SftVsPyTorch, LlamaPacked) { check(Family::llama, SftBatching::pack, 2); }
TEST_F(SftVsPyTorch, Gpt2Padded) { check(Family::gpt2, SftBatching::pad, 3); }
TEST_F(SftVsPyTorch, LlamaPadded) { check(Family::llama, SftBatching::pad, 3); }
