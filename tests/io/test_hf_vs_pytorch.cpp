// teddy's exported Hugging Face directories, read by an independent PyTorch
// implementation of transformers' GPT2LMHeadModel and LlamaForCausalLM conventions
// (tests/reference/hf_reference.py: HF tensor names, Conv1D [in, out], rotate-half RoPE,
// repeat_kv GQA, tied or untied head, sharded index, bf16 storage), give the logits teddy
// computes on the same tokens after importing that directory.
//
// The bound is the project's rule for a whole-model fp32 result (docs/TESTING.md rule 2,
// test::Dist in tests/model/model_f64.h): the reference evaluates the same stored weights
// in float32 (P) and float64 (X64); teddy's logits X must satisfy
// ||X - X64|| <= 2 ||P - X64|| + eps32 ||X64|| over all logits of a case.
// /usr/bin/python3 with torch is required (Debian: python3-torch); the test fails, never
// skips, without it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <random>

#include "io/interop_test_util.h"
#include "model/model_f64.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/safetensors.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string name;
  test::RunSpec spec;
  PretokenizerKind pattern;
  DType dtype;
  uint64_t max_shard = 5'000'000'000;
  // prepared
  std::string hf, run2, out;
  std::vector<int32_t> tokens;
};

test::RunSpec llama(bool tie, bool bias) {
  test::RunSpec s = test::llama_spec(tie, bias);  // GQA: two query heads per kv head
  s.norm_eps = 1e-6f;
  s.rope_theta = 5000.0f;  // not the default, so a dropped theta would show
  return s;
}

// Llama 3.1's rope_scaling with a short original context, all three frequency bands
// hit (interop_test_util.h), over positions 0..31.
test::RunSpec llama_rope_scaled() {
  test::RunSpec s = llama(false, false);
  s.rope_scaling = test::small_llama3_scaling();
  return s;
}

// Qwen2ForCausalLM: biases on q/k/v alone.
test::RunSpec qwen2() {
  test::RunSpec s = llama(true, false);
  s.qkv_bias = true;
  return s;
}

std::vector<double> doubles(const SafetensorsFile& f, const std::string& name) {
  const SafeTensor& t = f.get(name);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype == "F64") {
    std::memcpy(out.data(), t.bytes.data(), out.size() * 8);
  } else {
    const std::vector<float> v = f.to_f32(name);
    std::copy(v.begin(), v.end(), out.begin());
  }
  return out;
}

TEST(HfVsPytorch, LogitsMatchAnIndependentReader) {
  test::RunSpec gpt2_untied;
  gpt2_untied.tie = false;
  std::vector<Case> cases = {
      {"gpt2_f32", {}, PretokenizerKind::gpt2, DType::f32},
      {"gpt2_untied_bf16_sharded", gpt2_untied, PretokenizerKind::gpt2, DType::bf16, 20000},
      {"llama_gqa_f32", llama(false, false), PretokenizerKind::llama3, DType::f32},
      {"llama_gqa_bf16_sharded", llama(false, false), PretokenizerKind::llama3, DType::bf16, 12000},
      {"llama_tied_bias_f32", llama(true, true), PretokenizerKind::gpt2, DType::f32},
      {"llama_rope_llama3_f32", llama_rope_scaled(), PretokenizerKind::llama3, DType::f32},
      {"llama_rope_llama3_bf16", llama_rope_scaled(), PretokenizerKind::llama3, DType::bf16},
      {"qwen2_f32", qwen2(), PretokenizerKind::llama3, DType::f32},
  };
  const std::string root = test::fresh_dir("hf_vs_pytorch");
  std::string args;
  for (Case& c : cases) {
    const Tokenizer tok = test::trained_tokenizer(c.pattern);
    Model m(test::config_for(c.spec, tok.vocab_size()));
    test::randomize(m, 21);
    const std::string run = root + "/" + c.name + "_run";
    test::write_run(run, m, tok);
    c.hf = root + "/" + c.name + "_hf";
    c.run2 = root + "/" + c.name + "_run2";
    c.out = root + "/" + c.name + "_out.safetensors";
    HfExportOptions o;
    o.dtype = c.dtype;
    o.max_shard_bytes = c.max_shard;
    export_hf(run, c.hf, o);
    import_hf(c.hf, c.run2);
    // Text through the tokenizer, then random ids to cover the vocabulary; every position.
    for (uint32_t id : tok.encode("Hello world! Les modèles de langue, 2 + 2 = 4."))
      if (c.tokens.size() < 16) c.tokens.push_back(static_cast<int32_t>(id));
    std::mt19937 rng(3);
    while (static_cast<int>(c.tokens.size()) < m.config().max_seq_len)
      c.tokens.push_back(static_cast<int32_t>(rng() % tok.vocab_size()));
    std::string ids;
    for (int32_t t : c.tokens) ids += (ids.empty() ? "" : ",") + std::to_string(t);
    args += " '" + c.hf + "' " + ids + " '" + c.out + "'";
  }
  const std::string log = root + "/python.log";
  const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/hf_reference.py'" + args + " > '" +
                          log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "the PyTorch reference failed; it needs /usr/bin/python3 with torch and numpy (Debian: "
                      "python3-torch, python3-numpy).\ncommand: "
                   << cmd << "\noutput:\n" << test::read_file(log);

  std::cout << "  logits ||x - f64|| / ||f64|| (teddy | torch fp32 | bound: 2 x torch fp32 + eps32)\n";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ModelConfig cfg;
    const std::vector<float> params = test::run_params(c.run2, &cfg);
    Model m(cfg);
    std::copy(params.begin(), params.end(), m.params());
    const int T = static_cast<int>(c.tokens.size()), V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
    Batch b;
    b.tokens = c.tokens.data();
    b.B = 1;
    b.T = T;
    std::vector<float> logits(static_cast<size_t>(T) * Vp);
    m.forward(b, logits.data());
    std::vector<double> ours(static_cast<size_t>(T) * V);
    for (int t = 0; t < T; ++t)
      for (int v = 0; v < V; ++v) ours[static_cast<size_t>(t) * V + v] = logits[static_cast<size_t>(t) * Vp + v];
    const SafetensorsFile f = SafetensorsFile::open(c.out);
    const std::vector<double> ref32 = doubles(f, "logits"), ref64 = doubles(f, "f64.logits");
    ASSERT_EQ(ref32.size(), ours.size());
    const test::Dist d = test::dist(ours.data(), ref32.data(), ref64.data(), ours.size());
    std::cout << "    " << std::left << std::setw(28) << c.name << std::scientific << std::setprecision(2)
              << d.x_abs / d.norm64 << " | " << d.p_abs / d.norm64 << " | " << d.bound() / d.norm64 << std::defaultfloat
              << "\n";
    test::expect_rule(d, "hf_vs_pytorch." + c.name + ".logits");
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace teddy
