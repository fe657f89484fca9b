#pragma once
// Helpers for the Hugging Face / GGUF interop tests: small teddy runs (a checkpoint
// written by save_checkpoint, a trained tokenizer, optionally a chat template), their
// parameters read back through load_checkpoint, and error-message checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_test_util.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"
#include "teddy/checkpoint/checkpoint.h"

namespace teddy::test {

namespace fs = std::filesystem;

// A fresh directory under the build tree, per process (ctest runs cases in parallel).
inline std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::path(TEDDY_BINARY_DIR) / "test_interop" / (name + "." + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

inline Tokenizer trained_tokenizer(PretokenizerKind kind, int vocab = 600,
                                   std::vector<std::string> specials = {"<|endoftext|>"}) {
  BpeTrainer t({.vocab_size = vocab, .pattern = kind, .specials = std::move(specials)});
  t.add_text(read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"));
  return t.train();
}

// A small model of either family whose vocabulary is the tokenizer's (padded to 64).
struct RunSpec {
  Family family = Family::gpt2;
  bool tie = true;
  bool bias = true;
  int n_head = 4, n_kv_head = 4, d_model = 32, d_ff = 128, n_layer = 2, max_seq_len = 32;
  float norm_eps = 1e-5f, rope_theta = 10000.0f;
  bool qkv_bias = false;      // Qwen2: biases on q/k/v only
  RopeScaling rope_scaling;   // LLaMA: none, or llama3
};

// Llama 3.1's rope_scaling at a short original context, so that with the interop
// tests' head_dim 8 and theta 5000 the four frequencies fall in all three bands
// (wavelengths 6.3 | 52.8 | 444, 3737 against 32/4 = 8 and 32/0.5 = 64).
inline RopeScaling small_llama3_scaling() {
  RopeScaling s;
  s.type = RopeScaling::Type::llama3;
  s.factor = 4.0f;
  s.low_freq_factor = 0.5f;
  s.high_freq_factor = 4.0f;
  s.original_max_position_embeddings = 32;
  return s;
}

// The small LLaMA-style shape the interop tests share: GQA (4 query heads over 2 kv
// heads) and d_ff 48, whose rows are not a multiple of q8_0's 32.
inline RunSpec llama_spec(bool tie = false, bool bias = false) {
  RunSpec s;
  s.family = Family::llama;
  s.tie = tie;
  s.bias = bias;
  s.n_kv_head = 2;
  s.d_ff = 48;
  return s;
}

inline ModelConfig config_for(const RunSpec& s, int vocab) {
  ModelConfig c = ModelConfig::for_family(s.family);
  c.tie_embeddings = s.tie;
  c.bias = s.bias;
  c.n_head = s.n_head;
  c.n_kv_head = s.n_kv_head;
  c.d_model = s.d_model;
  c.d_ff = s.d_ff;
  c.n_layer = s.n_layer;
  c.max_seq_len = s.max_seq_len;
  c.norm_eps = s.norm_eps;
  c.rope_theta = s.rope_theta;
  c.qkv_bias = s.qkv_bias;
  c.rope_scaling = s.rope_scaling;
  c.vocab_size = vocab;
  c.padded_vocab_size = ModelConfig::pad_vocab(vocab);
  c.validate();
  return c;
}

// Random weights (init_weights), norm weights and biases made non-trivial so a
// swapped or dropped tensor shows. Padding rows stay zero, as in a trained model.
inline void randomize(Model& m, uint64_t seed) {
  m.init_weights(seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<float> d(0.0f, 0.05f);
  for (const ParamInfo& p : m.layout().params) {
    if (p.shape.size() != 1) continue;
    float* x = m.param(p.name);
    for (size_t i = 0; i < p.numel; ++i) x[i] += d(rng);
  }
}

// Writes a run directory the way pretrain / sft leave one: a checkpoint, tokenizer.json
// (teddy's format) and, when given, chat_template.json.
inline void write_run(const std::string& run_dir, const Model& m, const Tokenizer& tok, const ChatTemplate* tmpl = nullptr,
                      int64_t step = 7) {
  fs::create_directories(run_dir);
  AdamW opt(m.layout(), AdamWConfig{}, m.context());
  CheckpointState st;
  st.step = step;
  save_checkpoint(run_dir, m, opt, st, 0);
  tok.save(run_dir + "/tokenizer.json");
  if (tmpl) tmpl->save(run_dir + "/chat_template.json");
}

// The parameters of a run's newest checkpoint, through the public loader.
inline std::vector<float> run_params(const std::string& run_dir, ModelConfig* cfg = nullptr) {
  const VerifiedCheckpoint v = resolve_verified_checkpoint(run_dir);
  Model m(v.info.model_config);
  load_checkpoint(v, m, nullptr);
  if (cfg) *cfg = v.info.model_config;
  return std::vector<float>(m.params(), m.params() + m.flat_size());
}

// Runs fn and returns the message of the FormatError (or other teddy::Error) it throws;
// a failure when nothing is thrown.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error, nothing thrown";
  return "";
}

// tests/io/setup_node_llama_cpp.sh into <build>/npm-llama: node-llama-cpp,
// @huggingface/gguf, @huggingface/jinja, @huggingface/tokenizers.
inline std::string llama_npm_dir(std::string& error) {
  return npm_peer_dir("tests/io/setup_node_llama_cpp.sh", "npm-llama", error);
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Every file directly in `dir`, read whole (name -> bytes).
inline std::map<std::string, std::string> dir_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out[e.path().filename().string()] = read_file(e.path().string());
  return out;
}

}  // namespace teddy::test
