// PEFT adapter directories: teddy writes adapter_config.json + adapter_model.safetensors
// with PEFT's keys and shapes for GPT-2 and LLaMA, reads them back bit for bit, and an
// independent script (tests/reference/peft_reference.py) folds the adapter into the
// Hugging Face export of the base the way PEFT merges and gets teddy's merged model's
// HF export; bad adapters (another base, missing tensors, unsupported options) are
// refused naming the file and key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/interop_test_util.h"
#include "kernels/kernel_check.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_peft.h"
#include "teddy/io/safetensors.h"
#include "teddy/model/lora.h"

using namespace teddy;
using namespace teddy::test;
namespace fs = std::filesystem;

namespace {

ModelConfig small(Family f) {
  ModelConfig c = ModelConfig::for_family(f);
  c.vocab_size = 300;
  c.padded_vocab_size = 320;
  c.max_seq_len = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = f == Family::gpt2 ? 4 : 2;
  c.d_model = 32;
  c.d_ff = f == Family::gpt2 ? 128 : 48;
  c.validate();
  return c;
}

LoraConfig lcfg(int r, std::vector<std::string> targets = {}, bool rs = false) {
  LoraConfig l;
  l.r = r;
  l.alpha = 12;
  l.targets = std::move(targets);
  l.rslora = rs;
  return l;
}

// A base with random weights and a LoRA model over it with random A and B.
Model adapted(const ModelConfig& c, const LoraConfig& l, uint64_t seed) {
  Model m(c);
  m.init_weights(seed);
  m.enable_lora(l, seed + 1);
  std::vector<float> v = randn(m.flat_size(), seed + 2, 0.3);
  std::copy(v.begin(), v.end(), m.params());
  return m;
}

std::string save_run(const std::string& dir, const Model& m) {
  AdamW opt(m.layout(), AdamWConfig{});
  CheckpointState st;
  save_checkpoint(dir, m, opt, st, 0);
  Tokenizer::bytes().save((fs::path(dir) / "tokenizer.json").string());
  return dir;
}

struct PeftCase {
  const char* name;
  Family f;
  LoraConfig l;
};

class HfPeft : public ::testing::TestWithParam<PeftCase> {};

TEST_P(HfPeft, RoundTripsAndMatchesPeftsMerge) {
  const PeftCase& k = GetParam();
  const ModelConfig c = small(k.f);
  Model m = adapted(c, k.l, 7);
  const std::string root = fresh_dir(std::string("peft_") + k.name);
  const std::string peft = root + "/adapter";
  save_peft_adapter(m, peft, "teddy-test-base");
  // Keys and shapes as PEFT names them.
  const SafetensorsFile f = SafetensorsFile::open(peft + "/adapter_model.safetensors");
  const std::string first = k.f == Family::gpt2 ? "base_model.model.transformer.h.0.attn.c_proj.lora_A.weight"
                                                : "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  ASSERT_TRUE(f.contains(first)) << first;
  EXPECT_EQ(f.get(first).shape, (std::vector<int64_t>{k.l.r, c.d_model}));
  if (k.f == Family::gpt2 && !k.l.targets.empty()) {  // attn.c_proj only: mlp.c_proj stays unadapted
    EXPECT_FALSE(f.contains("base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight"));
    std::ifstream in(peft + "/adapter_config.json");
    EXPECT_EQ(nlohmann::json::parse(in)["target_modules"], nlohmann::json::array({"attn.c_proj"}));
  }
  // Read back into a plain model of the same base: the same adapters, bit for bit.
  Model back(c);
  std::copy(m.base_params(), m.base_params() + m.base_layout().total, back.params());
  load_peft_adapter(back, peft);
  ASSERT_NE(back.lora(), nullptr);
  EXPECT_EQ(back.lora()->scale(), m.lora()->scale());
  ASSERT_EQ(back.flat_size(), m.flat_size());
  EXPECT_EQ(std::vector<float>(back.params(), back.params() + back.flat_size()),
            std::vector<float>(m.params(), m.params() + m.flat_size()));
  // The base and the merged model in HF's layout; the reference folds the adapter in.
  Model plain(c);
  std::copy(m.base_params(), m.base_params() + m.base_layout().total, plain.params());
  HfExportOptions eo;
  export_hf(save_run(root + "/base_run", plain), root + "/hf_base", eo);
  export_hf(save_run(root + "/merged_run", merge_lora(m)), root + "/hf_merged", eo);
  const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/peft_reference.py' '" + root +
                          "/hf_base' '" + peft + "' '" + root + "/hf_merged' > '" + root + "/log' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(root + "/log");
  const std::string out((std::istreambuf_iterator<char>(log)), {});
  EXPECT_EQ(rc, 0) << out;
  std::cout << "  " << out;
  if (rc == 0) fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Cases, HfPeft,
                         ::testing::Values(PeftCase{"gpt2", Family::gpt2, lcfg(4)},
                                           PeftCase{"llama", Family::llama, lcfg(4)},
                                           PeftCase{"llama_qv_rs", Family::llama, lcfg(3, {"q_proj", "v_proj"}, true)},
                                           PeftCase{"gpt2_attn_c_proj", Family::gpt2, lcfg(2, {"attn.c_proj"})}),
                         [](const auto& i) { return std::string(i.param.name); });

TEST(HfPeftErrors, NameTheFileAndKey) {
  const ModelConfig c = small(Family::llama);
  Model m = adapted(c, lcfg(4), 3);
  const std::string dir = fresh_dir("peft_errors");
  save_peft_adapter(m, dir + "/ok");
  // Another base: wider model.
  ModelConfig wide = c;
  wide.d_model = 64;
  wide.d_ff = 96;
  Model other(wide);
  const std::string e1 = error_of([&] { load_peft_adapter(other, dir + "/ok"); });
  EXPECT_NE(e1.find("adapter_model.safetensors: tensor \"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\" has shape"),
            std::string::npos) << e1;
  // More layers than the adapter has.
  ModelConfig deep = c;
  deep.n_layer = 3;
  Model deeper(deep);
  const std::string e2 = error_of([&] { load_peft_adapter(deeper, dir + "/ok"); });
  EXPECT_NE(e2.find("layers.2.self_attn.q_proj.lora_A.weight\" missing"), std::string::npos) << e2;
  // Fewer layers: an extra tensor.
  ModelConfig shallow = c;
  shallow.n_layer = 1;
  Model shallower(shallow);
  const std::string e3 = error_of([&] { load_peft_adapter(shallower, dir + "/ok"); });
  EXPECT_NE(e3.find("is not an adapter of this model"), std::string::npos) << e3;
  // Options teddy cannot represent, and a GPT-2 adapter's target names on a LLaMA.
  auto with = [&](const std::string& key, nlohmann::json v) {
    std::ifstream in(dir + "/ok/adapter_config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j[key] = v;
    fs::create_directories(dir + "/bad");
    fs::copy_file(dir + "/ok/adapter_model.safetensors", dir + "/bad/adapter_model.safetensors",
                  fs::copy_options::overwrite_existing);
    std::ofstream(dir + "/bad/adapter_config.json") << j.dump();
    Model fresh(c);
    return error_of([&] { load_peft_adapter(fresh, dir + "/bad"); });
  };
  EXPECT_NE(with("use_dora", true).find("adapter_config.json: use_dora"), std::string::npos);
  EXPECT_NE(with("bias", "all").find("adapter_config.json: bias"), std::string::npos);
  EXPECT_NE(with("rank_pattern", {{"q_proj", 8}}).find("adapter_config.json: rank_pattern"), std::string::npos);
  EXPECT_NE(with("target_modules", ".*proj").find("adapter_config.json: target_modules"), std::string::npos);
  EXPECT_NE(with("target_modules", {"c_attn"}).find("lora.targets: unknown target 'c_attn'"), std::string::npos);
  EXPECT_NE(with("r", 0).find("lora.r"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
