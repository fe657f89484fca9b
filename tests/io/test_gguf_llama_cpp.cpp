// llama.cpp runs teddy's GGUF files. For a small model of each family trained here (GPT-2,
// LLaMA, LLaMA with Llama 3.1's rope_scaling at a short original context, Qwen2; it
// memorises a few kilobytes of mixed text, so its greedy choices have margins), the
// GGUF export is loaded by the npm package node-llama-cpp (prebuilt llama.cpp; installed
// into <build>/npm-llama by tests/io/setup_node_llama_cpp.sh, like the tiktoken peer):
//   * greedy continuations (temperature 0) of several prompts equal teddy's generate()
//     token for token for 40 tokens, with f32 and f16 weights (bf16, q8_0 and q4_0: the
//     agreement is printed, not required);
//   * llama.cpp's tokenizer gives teddy's ids on mixed text and random strings;
//   * @huggingface/gguf, an independent parser, reads the header: architecture,
//     hyperparameters, tokenizer keys, every tensor's name, shape and type.
// Needs node and npm (with registry access once, or a filled <build>/npm-llama): without
// them these tests FAIL (they never skip).
#include <gtest/gtest.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "io/interop_test_util.h"
#include "teddy/io/gguf_export.h"
#include "teddy/model/generate.h"
#include "teddy/train/optim/adamw.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// What the models memorise: the tokenizer test's mixed text and a few paragraphs.
std::string corpus() {
  std::string s = test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt");
  s += R"(
The lighthouse keeper wrote in his log every evening. The wind came from the west, the sea was calm,
and three ships passed before midnight. In the morning he counted 42 gulls on the rocks and painted
the railing blue again, because the salt had eaten the old paint away.

def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

Le boulanger ouvre sa boutique à six heures. Les croissants sortent du four, dorés et chauds, et la
première cliente demande toujours une baguette bien cuite. Der Bäcker öffnet um sechs Uhr.
)";
  return s;
}

struct Trained {
  std::unique_ptr<Model> model;
  Tokenizer tok;
  std::vector<int32_t> stream;  // the corpus, tokenized
};

// Which model: a family, and for LLaMA the Qwen2 biases or llama3 RoPE scaling.
struct Variant {
  const char* name;
  Family f;
  bool qwen2 = false;
  bool rope_llama3 = false;
};

// Memorises the corpus: AdamW on random windows of the token stream (no end-of-text
// token in it, so greedy continuations never stop early).
Trained train(const Variant& v) {
  const Family f = v.f;
  Trained t;
  const std::string text = corpus();
  BpeTrainer bt({.vocab_size = 700,
                 .pattern = f == Family::gpt2 ? PretokenizerKind::gpt2 : PretokenizerKind::llama3,
                 .specials = {"<|endoftext|>"}});
  bt.add_text(text);
  t.tok = bt.train();
  for (uint32_t id : t.tok.encode(text)) t.stream.push_back(static_cast<int32_t>(id));
  test::RunSpec s;
  s.family = f;
  s.d_model = 64;
  s.n_head = 4;
  s.n_kv_head = f == Family::gpt2 ? 4 : 2;
  s.d_ff = f == Family::gpt2 ? 256 : 192;
  s.tie = f == Family::gpt2;
  s.bias = f == Family::gpt2;
  s.max_seq_len = 128;
  if (v.qwen2) {  // Qwen2ForCausalLM: q/k/v biases, tied head (as Qwen2.5-0.5B)
    s.qkv_bias = true;
    s.tie = true;
  }
  if (v.rope_llama3) {
    // head_dim 16, theta 1e4: wavelengths 6.3 | 19.9, 62.8 | 199 ... 19869 against
    // 64/4 = 16 and 64/1 = 64: one frequency kept, two interpolated, five divided by 8;
    // the prompts and continuations run to position 52.
    s.rope_scaling.type = RopeScaling::Type::llama3;
    s.rope_scaling.factor = 8.0f;
    s.rope_scaling.low_freq_factor = 1.0f;
    s.rope_scaling.high_freq_factor = 4.0f;
    s.rope_scaling.original_max_position_embeddings = 64;
  }
  t.model = std::make_unique<Model>(test::config_for(s, t.tok.vocab_size()));
  Model& m = *t.model;
  m.init_weights(7);
  AdamWConfig oc;
  oc.lr = 3e-3f;
  oc.weight_decay = 0.0f;
  AdamW opt(m.layout(), oc, m.context());
  const int B = 8, T = 64, steps = 400;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  std::mt19937 rng(1);
  double loss = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    for (int b = 0; b < B; ++b) {
      const size_t off = rng() % (t.stream.size() - T - 1);
      for (int i = 0; i < T; ++i) {
        tokens[b * T + i] = t.stream[off + i];
        targets[b * T + i] = t.stream[off + i + 1];
      }
    }
    Batch batch{tokens.data(), targets.data(), nullptr, nullptr, B, T};
    m.zero_grad();
    loss = m.forward_backward(batch, 1.0f / (B * T)).mean();
    const float lr = oc.lr * std::min(1.0f, (step + 1) / 20.0f);
    opt.step(m.params(), m.grads(), lr);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "  " << v.name << ": trained " << steps << " steps in " << std::fixed << std::setprecision(1)
            << secs << " s, last loss " << std::setprecision(3) << loss << std::defaultfloat << " nats/token\n";
  return t;
}

json run_peer(const std::string& npm, const json& job, const std::string& dir) {
  const std::string job_path = dir + "/job.json";
  test::write_file(job_path, job.dump());
  std::string out;
  const int rc = test::run_command("'" + npm + "/node/bin/node' '" TEDDY_SOURCE_DIR "/tests/io/llama_cpp_peer.mjs' '" + npm + "' '" +
                                       job_path + "' 2>'" + dir + "/node.log'",
                                   out);
  EXPECT_EQ(rc, 0) << "node llama_cpp_peer.mjs failed:\n" << test::read_file(dir + "/node.log");
  try {
    return json::parse(out);
  } catch (const json::exception&) {
    ADD_FAILURE() << "bad output from llama_cpp_peer.mjs: " << out << "\n" << test::read_file(dir + "/node.log");
    return json::object();
  }
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

class GgufLlamaCpp : public ::testing::TestWithParam<Variant> {};

TEST_P(GgufLlamaCpp, GreedyContinuationsAndTokenizerMatch) {
  std::string error;
  const std::string npm = test::llama_npm_dir(error);
  ASSERT_FALSE(npm.empty()) << error;
  const Variant& v = GetParam();
  const Family f = v.f;
  const std::string root = test::fresh_dir(std::string("gguf_llama_cpp_") + v.name);
  Trained t = train(v);
  const std::string run = root + "/run";
  test::write_run(run, *t.model, t.tok);
  Model& m = *t.model;
  const ModelConfig& cfg = m.config();

  // Prompts: 12 tokens from several places in the memorised text.
  constexpr int kNew = 40;
  std::vector<std::vector<int32_t>> prompts;
  for (size_t at : {size_t{0}, t.stream.size() / 5, t.stream.size() / 2, t.stream.size() * 4 / 5})
    prompts.emplace_back(t.stream.begin() + at, t.stream.begin() + at + 12);
  std::vector<std::vector<int32_t>> ours;
  SamplingOptions greedy;
  greedy.temperature = 0.0f;  // teddy generate --temperature 0
  for (const auto& p : prompts) ours.push_back(generate(m, p, kNew, greedy));
  // How close each prompt's first greedy choice is (top-1 minus top-2 logit): a small
  // margin is where 8-bit weights can flip the choice.
  std::cout << "  " << v.name << " first-token margins (logits):";
  for (const auto& p : prompts) {
    std::vector<float> lg(p.size() * cfg.padded_vocab_size);
    const Batch b{p.data(), nullptr, nullptr, nullptr, 1, static_cast<int>(p.size())};
    m.forward(b, lg.data());
    const float* last = lg.data() + (p.size() - 1) * cfg.padded_vocab_size;
    std::vector<float> v(last, last + cfg.vocab_size);
    std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
    std::cout << " " << std::setprecision(3) << v[0] - v[1] << std::defaultfloat;
  }
  std::cout << "\n";

  // Mixed text: the tokenizer test's file, lines of it, random strings.
  std::vector<std::string> texts = {test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"), corpus()};
  std::mt19937 rng(9);
  for (int i = 0; i < 100; ++i) texts.push_back(test::random_text(rng, 1 + static_cast<int>(rng() % 80)));

  std::cout << "  " << v.name << " greedy agreement with llama.cpp (tokens equal from the start, of " << kNew
            << ", per prompt):\n";
  for (const char* type : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    const std::string file = root + "/model-" + type + ".gguf";
    GgufExportOptions o;
    o.type = gguf_file_type_from_name(type);
    const GgufExportReport r = export_gguf(run, file, o);
    json job = {{"model", file}, {"context", cfg.max_seq_len}, {"generate", json::array()}};
    for (const auto& p : prompts) job["generate"].push_back({{"prompt", p}, {"n", kNew}});
    if (std::string(type) == "f32") job["tokenize"] = texts;
    const json peer = run_peer(npm, job, root);
    ASSERT_TRUE(peer.contains("generated"));
    std::cout << "    " << std::setw(5) << type << ":";
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int32_t> theirs = peer["generated"][i].get<std::vector<int32_t>>();
      const size_t same = common_prefix(ours[i], theirs);
      std::cout << " " << same;
      if (std::string(type) == "f32" || std::string(type) == "f16") {  // bf16, q8_0, q4_0: reported
        EXPECT_EQ(ours[i].size(), static_cast<size_t>(kNew));
        EXPECT_EQ(ours[i], theirs) << "prompt " << i << ": first difference at token " << same;
      }
    }
    std::cout << "\n";

    // The header, through @huggingface/gguf.
    const json& md = peer["metadata"];
    const std::string arch = f == Family::gpt2 ? "gpt2" : v.qwen2 ? "qwen2" : "llama";
    EXPECT_EQ(md["version"], 3);
    EXPECT_EQ(md["general.architecture"], arch);
    EXPECT_EQ(md[arch + ".context_length"], cfg.max_seq_len);
    EXPECT_EQ(md[arch + ".embedding_length"], cfg.d_model);
    EXPECT_EQ(md[arch + ".block_count"], cfg.n_layer);
    EXPECT_EQ(md[arch + ".feed_forward_length"], cfg.d_ff);
    EXPECT_EQ(md[arch + ".attention.head_count"], cfg.n_head);
    if (f == Family::llama) {
      EXPECT_EQ(md[arch + ".attention.head_count_kv"], cfg.n_kv_head);
      EXPECT_EQ(md[arch + ".rope.dimension_count"], cfg.head_dim());
      EXPECT_FLOAT_EQ(md[arch + ".rope.freq_base"].get<float>(), cfg.rope_theta);
    }
    // The converter's extra tensors: rope_freqs for llama3 scaling; Qwen2's q/k/v biases.
    std::set<std::string> names;
    for (const json& ti : peer["tensors"]) names.insert(ti["name"].get<std::string>());
    EXPECT_EQ(names.count("rope_freqs.weight"), v.rope_llama3 ? 1u : 0u);
    if (f == Family::llama) {
      EXPECT_EQ(names.count("blk.0.attn_q.bias") + names.count("blk.1.attn_k.bias") + names.count("blk.1.attn_v.bias"),
                v.qwen2 ? 3u : 0u);
      EXPECT_EQ(names.count("blk.0.attn_output.bias") + names.count("blk.0.ffn_up.bias"), 0u);
    }
    EXPECT_EQ(md["tokenizer.ggml.model"], "gpt2");
    EXPECT_EQ(md["tokenizer.ggml.pre"], r.pre_tokenizer);
    EXPECT_EQ(md["tokenizer.ggml.tokens"]["length"], cfg.vocab_size);
    EXPECT_EQ(md["tokenizer.ggml.token_type"]["length"], cfg.vocab_size);
    EXPECT_EQ(md["tokenizer.ggml.merges"]["length"], r.merges);
    EXPECT_EQ(md["tokenizer.ggml.eos_token_id"], t.tok.eot_id());
    EXPECT_EQ(peer["tensors"].size(), r.tensors);
    for (const json& ti : peer["tensors"]) {
      const std::string name = ti["name"];
      const std::vector<int64_t> shape = ti["shape"];
      if (name == "token_embd.weight" || name == "output.weight")
        EXPECT_EQ(shape, (std::vector<int64_t>{cfg.d_model, cfg.vocab_size})) << name;
      const int dtype = ti["dtype"];
      if (shape.size() == 1 || name == "position_embd.weight") EXPECT_EQ(dtype, 0) << name << " stays F32";
      else if (std::string(type) == "f16") EXPECT_EQ(dtype, 1) << name;
      else if (std::string(type) == "bf16") EXPECT_EQ(dtype, 30) << name;
      else if (std::string(type) == "q8_0") EXPECT_EQ(dtype, shape[0] % 32 == 0 ? 8 : 1) << name;
      else if (std::string(type) == "q4_0") EXPECT_EQ(dtype, shape[0] % 32 == 0 ? 2 : 1) << name;
    }

    if (peer.contains("tokenized") && !peer["tokenized"].empty()) {
      ASSERT_EQ(peer["tokenized"].size(), texts.size());
      int mismatches = 0;
      for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<uint32_t> mine = t.tok.encode(texts[i]);
        const std::vector<uint32_t> theirs = peer["tokenized"][i].get<std::vector<uint32_t>>();
        if (mine != theirs && ++mismatches <= 5)
          ADD_FAILURE() << "text " << i << " " << json(texts[i]).dump() << ": teddy and llama.cpp ids differ";
      }
      std::cout << "    tokenizer: " << texts.size() - mismatches << " of " << texts.size()
                << " texts give teddy's ids\n";
    }
  }
  if (!HasFailure()) fs::remove_all(root);
}

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }  // test names and logs

INSTANTIATE_TEST_SUITE_P(Families, GgufLlamaCpp,
                         ::testing::Values(Variant{"gpt2", Family::gpt2}, Variant{"llama", Family::llama},
                                           Variant{"llama_rope_llama3", Family::llama, false, true},
                                           Variant{"qwen2", Family::llama, true}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace teddy
