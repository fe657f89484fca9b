// Bad Hugging Face input: each case starts from a valid exported directory, breaks one
// thing, and checks that `import hf` refuses it with an error naming the file and the
// key or tensor at fault, and that nothing is left under --out (nor a temporary
// directory beside it). One case runs the CLI: exit status 1 and "teddy: error:".
#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "io/interop_test_util.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/safetensors.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::contains;

class HfErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }

  // A valid HF directory of the family (sharded when max_shard is small).
  std::string valid(Family f, uint64_t max_shard = 5'000'000'000) {
    const Tokenizer tok = test::trained_tokenizer(f == Family::gpt2 ? PretokenizerKind::gpt2 : PretokenizerKind::llama3);
    const test::RunSpec s = f == Family::llama ? test::llama_spec() : test::RunSpec{};
    Model m(test::config_for(s, tok.vocab_size()));
    test::randomize(m, 5);
    const std::string run = root_ + "/run_" + std::to_string(n_++);
    test::write_run(run, m, tok);
    const std::string hf = root_ + "/hf_" + std::to_string(n_++);
    HfExportOptions o;
    o.max_shard_bytes = max_shard;
    export_hf(run, hf, o);
    return hf;
  }

  // import_hf must throw with every `parts` in the message and leave nothing behind.
  void expect_refused(const std::string& hf, const std::vector<std::string>& parts) {
    const std::string out = root_ + "/out_" + std::to_string(n_++);
    const std::string msg = test::error_of([&] { import_hf(hf, out); });
    for (const std::string& p : parts) EXPECT_TRUE(contains(msg, p)) << "missing \"" << p << "\" in: " << msg;
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(root_))
      EXPECT_FALSE(contains(e.path().filename().string(), ".tmp")) << "left behind: " << e.path();
    std::cout << "  refused: " << msg << "\n";
  }

  void edit_json(const std::string& path, const std::function<void(json&)>& fn) {
    json j = json::parse(test::read_file(path));
    fn(j);
    test::write_file(path, j.dump(2));
  }

  // Rewrites a safetensors file through `fn`, which may drop, add or change tensors.
  struct Tensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  void edit_tensors(const std::string& path, const std::function<void(std::vector<Tensor>&)>& fn) {
    std::vector<Tensor> ts;
    {
      const SafetensorsFile f = SafetensorsFile::open(path);
      for (const std::string& n : f.names()) {
        const SafeTensor& t = f.get(n);
        ts.push_back({n, t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size())});
      }
    }
    fn(ts);
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const Tensor& t : ts) w.add_copy(t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
    w.write(path);
  }

  std::string root_;
  int n_ = 0;
};

TEST_F(HfErrors, MissingTensor) {
  const std::string hf = valid(Family::gpt2);
  edit_tensors(hf + "/model.safetensors", [](std::vector<Tensor>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const Tensor& t) { return t.name == "transformer.h.1.mlp.c_fc.bias"; }),
             ts.end());
  });
  expect_refused(hf, {hf + "/model.safetensors", "transformer.h.1.mlp.c_fc.bias", "missing"});
}

TEST_F(HfErrors, ExtraTensor) {
  const std::string hf = valid(Family::llama);
  edit_tensors(hf + "/model.safetensors", [](std::vector<Tensor>& ts) {
    ts.push_back({"model.layers.0.self_attn.q_norm.weight", "F32", {8}, std::string(32, '\0')});
  });
  expect_refused(hf, {"model.safetensors", "model.layers.0.self_attn.q_norm.weight", "unexpected tensor"});
}

TEST_F(HfErrors, ShapeMismatch) {
  const std::string hf = valid(Family::gpt2);
  edit_json(hf + "/config.json", [](json& j) { j["n_positions"] = 16; });
  expect_refused(hf, {"model.safetensors", "transformer.wpe.weight", "shape [32, 32]", "[16, 32]"});
  const std::string hf2 = valid(Family::llama);
  edit_tensors(hf2 + "/model.safetensors", [](std::vector<Tensor>& ts) {
    for (Tensor& t : ts)
      if (t.name == "model.layers.1.mlp.down_proj.weight") std::swap(t.shape[0], t.shape[1]);
  });
  expect_refused(hf2, {"model.safetensors", "model.layers.1.mlp.down_proj.weight", "shape [48, 32]", "[32, 48]"});
}

TEST_F(HfErrors, DtypeMismatch) {
  const std::string hf = valid(Family::gpt2);
  edit_tensors(hf + "/model.safetensors", [](std::vector<Tensor>& ts) {
    for (Tensor& t : ts)
      if (t.name == "transformer.h.0.attn.c_proj.weight") t.dtype = "I32";  // same size, wrong type
  });
  expect_refused(hf, {"model.safetensors", "transformer.h.0.attn.c_proj.weight", "dtype I32"});
}

TEST_F(HfErrors, IndexNamesMissingShard) {
  const std::string hf = valid(Family::llama, 12000);
  ASSERT_TRUE(fs::exists(hf + "/model.safetensors.index.json"));
  std::string shard;
  for (const auto& e : fs::directory_iterator(hf))
    if (contains(e.path().filename().string(), "-00002-of-")) shard = e.path().filename().string();
  ASSERT_FALSE(shard.empty());
  fs::remove(hf + "/" + shard);
  expect_refused(hf, {"model.safetensors.index.json", "weight_map", shard, "does not exist"});
}

TEST_F(HfErrors, IndexDisagreesWithShard) {
  const std::string hf = valid(Family::llama, 12000);
  std::string moved;
  edit_json(hf + "/model.safetensors.index.json", [&](json& j) {
    auto& wm = j["weight_map"];
    moved = "model.layers.1.mlp.up_proj.weight";
    const std::string home = wm[moved];
    for (auto& [t, f] : wm.items())
      if (f != home) {
        wm[moved] = f;  // claim it lives in another shard
        break;
      }
  });
  expect_refused(hf, {"model.safetensors.index.json", moved, "not in"});
}

TEST_F(HfErrors, TruncatedSafetensors) {
  const std::string hf = valid(Family::gpt2);
  const std::string path = hf + "/model.safetensors";
  fs::resize_file(path, fs::file_size(path) - 100);
  expect_refused(hf, {path});
}

TEST_F(HfErrors, UnsupportedArchitectures) {
  const std::string gpt2 = valid(Family::gpt2), llama = valid(Family::llama);
  struct Edit {
    std::string dir, key;
    std::function<void(json&)> fn;
  };
  const std::vector<Edit> edits = {
      {gpt2, "model_type", [](json& j) { j["model_type"] = "mistral"; }},
      {gpt2, "architectures", [](json& j) { j["architectures"] = {"GPT2ForSequenceClassification"}; }},
      {gpt2, "activation_function", [](json& j) { j["activation_function"] = "relu"; }},
      {gpt2, "scale_attn_by_inverse_layer_idx", [](json& j) { j["scale_attn_by_inverse_layer_idx"] = true; }},
      {gpt2, "quantization_config", [](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}}; }},
      {llama, "rope_scaling", [](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; }},
      {llama, "rope_scaling.original_max_position_embeddings", [](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}};
       }},
      {llama, "rope_scaling.high_freq_factor", [](json& j) {  // must exceed low_freq_factor
         j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 4.0},
                              {"high_freq_factor", 1.0}, {"original_max_position_embeddings", 8192}};
       }},
      {llama, "use_sliding_window", [](json& j) {  // Qwen2 with its sliding window on
         j["model_type"] = "qwen2";
         j["architectures"] = {"Qwen2ForCausalLM"};
         j["use_sliding_window"] = true;
       }},
      {llama, "hidden_act", [](json& j) { j["hidden_act"] = "gelu"; }},
      {llama, "head_dim", [](json& j) { j["head_dim"] = 16; }},
      {llama, "attention_bias", [](json& j) { j["attention_bias"] = true; }},
      {llama, "sliding_window", [](json& j) { j["sliding_window"] = 4096; }},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.key);
    const std::string copy = root_ + "/copy_" + std::to_string(n_++);
    fs::copy(e.dir, copy);
    edit_json(copy + "/config.json", e.fn);
    expect_refused(copy, {copy + "/config.json", e.key});
  }
}

TEST_F(HfErrors, UnsupportedTokenizers) {
  const std::string hf = valid(Family::gpt2);
  struct Edit {
    std::string file, key;
    std::function<void(json&)> fn;
  };
  const std::vector<Edit> edits = {
      {"tokenizer.json", "normalizer", [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }},
      {"tokenizer.json", "model.type", [](json& j) { j["model"]["type"] = "Unigram"; }},
      {"tokenizer.json", "pre_tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }},
      {"tokenizer.json", "decoder", [](json& j) { j["decoder"] = {{"type", "Metaspace"}}; }},
      {"tokenizer.json", "model.end_of_word_suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }},
      {"tokenizer_config.json", "eos_token", [](json& j) { j["eos_token"] = "<|no_such_token|>"; }},
      {"tokenizer_config.json", "add_prefix_space", [](json& j) { j["add_prefix_space"] = true; }},
      {"generation_config.json", "eos_token_id", [](json& j) { j["eos_token_id"] = "two"; }},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.file + " " + e.key);
    const std::string copy = root_ + "/copy_" + std::to_string(n_++);
    fs::copy(hf, copy);
    edit_json(copy + "/" + e.file, e.fn);
    expect_refused(copy, {copy + "/" + e.file, e.key});
  }
}

TEST_F(HfErrors, MissingFiles) {
  const std::string hf = valid(Family::gpt2);
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors"}) {
    SCOPED_TRACE(f);
    const std::string copy = root_ + "/copy_" + std::to_string(n_++);
    fs::copy(hf, copy);
    fs::remove(copy + "/" + f);
    expect_refused(copy, {copy, f});
  }
}

TEST_F(HfErrors, TiedHeadThatDiffers) {
  const std::string hf = valid(Family::gpt2);
  edit_tensors(hf + "/model.safetensors", [](std::vector<Tensor>& ts) {
    Tensor head;
    for (const Tensor& t : ts)
      if (t.name == "transformer.wte.weight") head = t;
    head.name = "lm_head.weight";
    head.bytes[5] ^= 1;
    ts.push_back(head);
  });
  expect_refused(hf, {"model.safetensors", "lm_head.weight", "tie_word_embeddings"});
}

TEST_F(HfErrors, CliExitsNonZeroAndWritesNothing) {
  const std::string hf = valid(Family::llama);
  edit_json(hf + "/config.json", [](json& j) { j["model_type"] = "mistral"; });
  const std::string out = root_ + "/cli_out";
  std::string output;
  const int rc = test::run_command("'" TEDDY_BINARY_DIR "/teddy' import hf '" + hf + "' --out '" + out + "' 2>&1", output);
  EXPECT_EQ(rc, 1) << output;
  EXPECT_TRUE(contains(output, "teddy: error: " + hf + "/config.json: model_type: \"mistral\" is not supported")) << output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace teddy
