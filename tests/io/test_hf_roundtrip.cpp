// Round trips through the Hugging Face format: import(export(x)) gives x's parameters
// bit for bit (f32; bf16 / f16: x rounded to nearest even, exactly), x's tokenizer
// (every field of its vocabulary) and chat template, for both families, tied and untied
// heads, GQA, LLaMA with biases, one file or shards; and export(import(export(x)))
// writes the same bytes as export(x), file for file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/interop_test_util.h"
#include "teddy/core/dtype.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_extras.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/safetensors.h"

namespace teddy {
namespace {

using test::contains;
namespace fs = std::filesystem;

struct Case {
  std::string name;
  test::RunSpec spec;
  PretokenizerKind pattern;
  DType dtype;
  std::string chat;           // "", "chatml", "llama3" or "custom"
  uint64_t max_shard = 5'000'000'000;
};

float round_to(DType t, float x) {
  if (t == DType::bf16) return bf16_to_f32(f32_to_bf16(x));
  if (t == DType::f16) return f16_to_f32(f32_to_f16(x));
  return x;
}

ChatTemplate custom_template() {
  ChatTemplate t;
  t.name = "custom";
  t.bos = "<s>";
  t.header_prefix = "[[";
  t.header_suffix = "]]: 'quoted' \\ {{ not jinja }}\n";
  t.end_of_turn = "</turn>";
  t.separator = "\n\n";
  t.specials = {"<s>", "</turn>"};
  return t;
}

void run_case(const Case& c) {
  SCOPED_TRACE(c.name);
  const std::string root = test::fresh_dir("hf_roundtrip_" + c.name);
  Tokenizer tok = test::trained_tokenizer(c.pattern);
  std::optional<ChatTemplate> tmpl;
  if (c.chat == "custom") tmpl = custom_template();
  else if (!c.chat.empty()) tmpl = ChatTemplate::named(c.chat);
  if (tmpl) add_template_specials(tok, *tmpl);
  Model m(test::config_for(c.spec, tok.vocab_size()));
  test::randomize(m, 11);
  const std::string run = root + "/run", hf1 = root + "/hf1", run2 = root + "/run2", hf2 = root + "/hf2";
  test::write_run(run, m, tok, tmpl ? &*tmpl : nullptr);

  HfExportOptions opts;
  opts.dtype = c.dtype;
  opts.max_shard_bytes = c.max_shard;
  const HfExportReport er = export_hf(run, hf1, opts);
  if (c.max_shard < 1'000'000) {
    EXPECT_GT(er.shards, 2);
    EXPECT_TRUE(fs::exists(hf1 + "/model.safetensors.index.json"));
    EXPECT_FALSE(fs::exists(hf1 + "/model.safetensors"));
    // Every shard within the limit unless it holds one oversized tensor.
    const auto index = nlohmann::json::parse(test::read_file(hf1 + "/model.safetensors.index.json"));
    uint64_t total = 0;
    for (int k = 1; k <= er.shards; ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, er.shards);
      const SafetensorsFile f = SafetensorsFile::open(hf1 + "/" + name);
      uint64_t bytes = 0;
      for (const std::string& t : f.names()) {
        bytes += f.get(t).bytes.size();
        EXPECT_EQ(index["weight_map"][t], name) << t;
      }
      total += bytes;
      if (f.size() > 1) {
        EXPECT_LE(bytes, c.max_shard) << name;
      }
    }
    EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  } else {
    EXPECT_EQ(er.shards, 1);
    EXPECT_TRUE(fs::exists(hf1 + "/model.safetensors"));
  }
  const HfImportReport ir = import_hf(hf1, run2);
  EXPECT_EQ(ir.checkpoint, run2 + "/checkpoints/step_00000000");

  // Parameters: bit for bit (after the export dtype's rounding).
  ModelConfig cfg2;
  const std::vector<float> p1(m.params(), m.params() + m.flat_size()), p2 = test::run_params(run2, &cfg2);
  EXPECT_EQ(model_config_difference(m.config(), cfg2), "");
  ASSERT_EQ(p1.size(), p2.size());
  size_t differ = 0;
  for (size_t i = 0; i < p1.size(); ++i) {
    const float want = round_to(c.dtype, p1[i]);
    if (std::memcmp(&want, &p2[i], 4) != 0) ++differ;
  }
  EXPECT_EQ(differ, 0u) << "of " << p1.size() << " floats";

  // Tokenizer: every field of the vocabulary. (Ids past the last ordinary token, where
  // specials live, may or may not have "" entries in `tokens`; both mean the same.)
  const Tokenizer tok2 = Tokenizer::load(run2 + "/tokenizer.json");
  ASSERT_EQ(tok.vocab_size(), tok2.vocab_size());
  // Specials are a set (teddy's file keeps them as a JSON object, ordered by text).
  auto padded = [&](BpeVocab v) {
    v.tokens.resize(static_cast<size_t>(tok.vocab_size()));
    v.ranks.resize(static_cast<size_t>(tok.vocab_size()), BpeVocab::kNoRank);
    std::sort(v.specials.begin(), v.specials.end());
    return v;
  };
  const BpeVocab a = padded(tok.vocab()), b = padded(tok2.vocab());
  EXPECT_EQ(a.pattern, b.pattern);
  auto first_diff = [](const auto& x, const auto& y) {
    size_t i = 0;
    while (i < x.size() && i < y.size() && x[i] == y[i]) ++i;
    return "sizes " + std::to_string(x.size()) + " / " + std::to_string(y.size()) + ", first difference at " +
           std::to_string(i);
  };
  EXPECT_TRUE(a.tokens == b.tokens) << first_diff(a.tokens, b.tokens);
  EXPECT_TRUE(a.ranks == b.ranks) << first_diff(a.ranks, b.ranks);
  EXPECT_EQ(a.specials, b.specials);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.whole_piece_first, b.whole_piece_first);

  // Chat template: the Jinja text in tokenizer_config.json, kept in hf_extras.json, and a
  // built-in template recognised again for generate --chat.
  const auto tc = nlohmann::json::parse(test::read_file(hf1 + "/tokenizer_config.json"));
  const HfExtras ex = HfExtras::from_json(test::read_file(run2 + "/hf_extras.json"), "hf_extras.json");
  if (tmpl) {
    EXPECT_EQ(tc["chat_template"], chat_template_jinja(*tmpl));
    EXPECT_EQ(ex.chat_template(), chat_template_jinja(*tmpl));
    if (c.chat != "custom") {  // a built-in template is recognised again
      ASSERT_TRUE(fs::exists(run2 + "/chat_template.json"));
      EXPECT_EQ(ChatTemplate::load(run2 + "/chat_template.json").to_json(), tmpl->to_json());
      EXPECT_EQ(ir.chat_template, c.chat);
    }
  } else {
    EXPECT_FALSE(tc.contains("chat_template"));
    EXPECT_FALSE(fs::exists(run2 + "/chat_template.json"));
  }

  // Export again: the same bytes, file for file; and importing that gives the same run
  // files (tokenizer.json in teddy's format, hf_extras.json) as the first import.
  export_hf(run2, hf2, opts);
  import_hf(hf2, root + "/run3");
  EXPECT_TRUE(test::read_file(run2 + "/tokenizer.json") == test::read_file(root + "/run3/tokenizer.json"));
  auto extras_without_source = [](const std::string& path) {
    nlohmann::json j = nlohmann::json::parse(test::read_file(path));
    j.erase("source");  // names the directory imported
    return j;
  };
  EXPECT_EQ(extras_without_source(run2 + "/hf_extras.json"), extras_without_source(root + "/run3/hf_extras.json"));
  const auto f1 = test::dir_files(hf1), f2 = test::dir_files(hf2);
  ASSERT_EQ(f1.size(), f2.size());
  for (const auto& [name, bytes] : f1) {
    ASSERT_TRUE(f2.count(name)) << name;
    EXPECT_TRUE(f2.at(name) == bytes) << name << " differs between export(x) and export(import(export(x)))";
  }
  fs::remove_all(root);
}

test::RunSpec llama(bool tie, bool bias) {
  test::RunSpec s = test::llama_spec(tie, bias);
  s.norm_eps = 1e-6f;
  s.rope_theta = 500000.0f;
  return s;
}

TEST(HfRoundTrip, Gpt2F32) { run_case({"gpt2_f32", {}, PretokenizerKind::gpt2, DType::f32, ""}); }
TEST(HfRoundTrip, Gpt2Bf16) { run_case({"gpt2_bf16", {}, PretokenizerKind::gpt2, DType::bf16, "chatml"}); }
TEST(HfRoundTrip, Gpt2UntiedF16) {
  test::RunSpec s;
  s.tie = false;
  run_case({"gpt2_untied_f16", s, PretokenizerKind::gpt2, DType::f16, "custom"});
}
TEST(HfRoundTrip, LlamaF32) { run_case({"llama_f32", llama(false, false), PretokenizerKind::llama3, DType::f32, "llama3"}); }
TEST(HfRoundTrip, LlamaBf16) { run_case({"llama_bf16", llama(false, false), PretokenizerKind::llama3, DType::bf16, ""}); }
TEST(HfRoundTrip, LlamaTiedWithBiasF32) {
  run_case({"llama_tied_bias", llama(true, true), PretokenizerKind::gpt2, DType::f32, "chatml"});
}
// Llama 3.1's rope_scaling and Qwen2's q/k/v biases: config (model_config_difference
// compares both) and parameters.
TEST(HfRoundTrip, LlamaRopeScalingBf16) {
  test::RunSpec s = llama(false, false);
  s.rope_scaling = test::small_llama3_scaling();
  run_case({"llama_rope_llama3", s, PretokenizerKind::llama3, DType::bf16, "llama3"});
}
TEST(HfRoundTrip, Qwen2F32) {
  test::RunSpec s = llama(true, false);
  s.qkv_bias = true;
  run_case({"qwen2_f32", s, PretokenizerKind::llama3, DType::f32, "chatml"});
}
TEST(HfRoundTrip, ShardedLikeTransformers) {
  run_case({"gpt2_sharded", {}, PretokenizerKind::gpt2, DType::f32, "", 20000});
  run_case({"llama_sharded_bf16", llama(false, false), PretokenizerKind::llama3, DType::bf16, "", 12000});
}

TEST(HfRoundTrip, OutputDirectoryMustBeNew) {
  const std::string root = test::fresh_dir("hf_out_exists");
  const Tokenizer tok = test::trained_tokenizer(PretokenizerKind::gpt2);
  Model m(test::config_for({}, tok.vocab_size()));
  test::randomize(m, 3);
  test::write_run(root + "/run", m, tok);
  fs::create_directories(root + "/taken");
  test::write_file(root + "/taken/keep.txt", "mine");
  const std::string msg = test::error_of([&] { export_hf(root + "/run", root + "/taken", {}); });
  EXPECT_TRUE(contains(msg, root + "/taken") && contains(msg, "already exists")) << msg;
  EXPECT_EQ(test::read_file(root + "/taken/keep.txt"), "mine");
  // An empty directory is fine (e.g. made by a job script).
  fs::create_directories(root + "/empty");
  export_hf(root + "/run", root + "/empty", {});
  EXPECT_TRUE(fs::exists(root + "/empty/config.json"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace teddy
