// GGUF writing, checked without llama.cpp: the file layout read back by a small reader
// written here from the format's description (docs/INTEROP.md), q8_0 blocks as ggml's
// reference quantizer makes them, LLaMA's q/k row permutation both as
// convert_hf_to_gguf.py writes it and by what it is for (ggml's adjacent-pair RoPE on
// permuted rows equals HF's rotate-half RoPE, permuted), and the export's choice of
// tensor types and names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numbers>

#include "io/interop_test_util.h"
#include "kernels/kernel_check.h"
#include "teddy/core/dtype.h"
#include "teddy/io/gguf_export.h"
#include "teddy/io/gguf_file.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;

// A GGUF reader for the tests: key-values as text, tensor infos, data offsets.
struct Gguf {
  uint32_t version = 0;
  std::map<std::string, std::string> kv;  // scalars as text; arrays as "[n]"
  std::map<std::string, uint32_t> kv_type;
  struct Info {
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<std::string> order;
  std::map<std::string, Info> tensors;
  uint64_t data_start = 0;
  std::string bytes;

  static Gguf read(const std::string& path) {
    Gguf g;
    g.bytes = test::read_file(path);
    size_t p = 0;
    auto take = [&](size_t n) {
      if (p + n > g.bytes.size()) throw Error("gguf: truncated");
      const char* s = g.bytes.data() + p;
      p += n;
      return s;
    };
    auto u32 = [&] { uint32_t v; std::memcpy(&v, take(4), 4); return v; };
    auto u64 = [&] { uint64_t v; std::memcpy(&v, take(8), 8); return v; };
    auto str = [&] { const uint64_t n = u64(); return std::string(take(n), n); };
    if (std::string(take(4), 4) != "GGUF") throw Error("gguf: bad magic");
    g.version = u32();
    const uint64_t n_tensors = u64(), n_kv = u64();
    std::function<std::string(uint32_t)> value = [&](uint32_t t) -> std::string {
      switch (t) {
        case 4: return std::to_string(u32());
        case 5: { int32_t v; std::memcpy(&v, take(4), 4); return std::to_string(v); }
        case 6: { float v; std::memcpy(&v, take(4), 4); return std::to_string(v); }
        case 7: return *take(1) ? "true" : "false";
        case 8: return str();
        case 10: return std::to_string(u64());
        case 9: {
          const uint32_t et = u32();
          const uint64_t n = u64();
          for (uint64_t i = 0; i < n; ++i) value(et);
          return "[" + std::to_string(n) + "]";
        }
      }
      throw Error("gguf: value type " + std::to_string(t) + " not handled by the test reader");
    };
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string k = str();
      const uint32_t t = u32();
      g.kv_type[k] = t;
      g.kv[k] = value(t);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
      const std::string name = str();
      Info info;
      const uint32_t nd = u32();
      for (uint32_t d = 0; d < nd; ++d) info.ne.push_back(u64());
      info.type = u32();
      info.offset = u64();
      g.order.push_back(name);
      g.tensors[name] = info;
    }
    g.data_start = (p + 31) / 32 * 32;
    return g;
  }
  const char* data(const std::string& name) const { return bytes.data() + data_start + tensors.at(name).offset; }
};

TEST(GgufFile, LayoutReadsBack) {
  const std::string dir = test::fresh_dir("gguf_layout");
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 3);
  w.add_f32("llama.rope.freq_base", 500000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "Ġc"});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 3});
  const std::vector<float> a = {1, 2, 3}, b = {0.5f, -0.25f, 4, 8, 16, 32};
  w.add_tensor("a", {3}, GgmlType::f32, [&] { return ggml_encode(GgmlType::f32, a.data(), a.size()); });
  w.add_tensor("b", {3, 2}, GgmlType::f16, [&] { return ggml_encode(GgmlType::f16, b.data(), b.size()); });
  w.write(dir + "/x.gguf");
  const Gguf g = Gguf::read(dir + "/x.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.kv.at("general.architecture"), "llama");
  EXPECT_EQ(g.kv.at("llama.block_count"), "3");
  EXPECT_EQ(g.kv.at("llama.rope.freq_base"), "500000.000000");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.add_bos_token"), "false");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens"), "[3]");
  EXPECT_EQ(g.order, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(g.tensors.at("b").ne, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(g.tensors.at("b").type, 1u);
  for (const auto& [n, t] : g.tensors) EXPECT_EQ(t.offset % kGgufAlignment, 0u) << n;
  EXPECT_EQ(g.data_start % kGgufAlignment, 0u);
  EXPECT_EQ(std::memcmp(g.data("a"), a.data(), 12), 0);
  for (size_t i = 0; i < b.size(); ++i) {
    f16_t h;
    std::memcpy(&h, g.data("b") + 2 * i, 2);
    EXPECT_EQ(f16_to_f32(h), b[i]);
  }
  EXPECT_EQ(g.bytes.size(), g.data_start + 32 + 32);  // each tensor padded to the alignment
  fs::remove_all(dir);
}

TEST(GgufFile, Q8_0BlocksAsGgmlQuantizes) {
  std::vector<float> x(64);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16) * 0.1f;  // max |x| = 1.6
  // Block 2 stays all zero: d = 0 and q = 0 (no division by zero).
  const std::vector<std::byte> q = ggml_encode(GgmlType::q8_0, x.data(), x.size());
  ASSERT_EQ(q.size(), 2u * 34);
  f16_t dh;
  std::memcpy(&dh, q.data(), 2);
  const float d = 1.6f / 127.0f;
  EXPECT_EQ(dh, f32_to_f16(d));
  for (int i = 0; i < 32; ++i) {
    const int8_t qi = static_cast<int8_t>(q[2 + i]);
    EXPECT_EQ(qi, static_cast<int8_t>(std::roundf(x[i] * (1.0f / d)))) << i;
  }
  EXPECT_EQ(static_cast<int8_t>(q[2]), -127);  // -1.6 / d
  std::memcpy(&dh, q.data() + 34, 2);
  EXPECT_EQ(dh, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(static_cast<int8_t>(q[36 + i]), 0);
  EXPECT_THROW(ggml_encode(GgmlType::q8_0, x.data(), 40), Error);
}

// Q4_0 as ggml's quantize_row_q4_0_ref: the scale from the element of largest magnitude
// with its sign (d = m / -8), codes min(15, trunc(x / d + 8.5)), two per byte (element j
// low nibble, j + 16 high); dequantized (code - 8) d is within |d| of x (within |d| / 2
// but for the clamped code 15).
TEST(GgufFile, Q4_0BlocksAsGgmlQuantizes) {
  std::vector<float> x(96);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 10) * 0.1f;       // largest: +2.1
  for (int i = 32; i < 64; ++i) x[i] = static_cast<float>(i - 32 - 20) * 0.05f;  // largest: -1.0
  // Block 3 all zero: d = 0, every code 8.
  const std::vector<std::byte> q = ggml_encode(GgmlType::q4_0, x.data(), x.size());
  ASSERT_EQ(q.size(), 3u * 18);
  EXPECT_EQ(ggml_type_bytes(GgmlType::q4_0, 64), 36u);
  const float ms[3] = {2.1f, -1.0f, 0.0f};
  for (int b = 0; b < 3; ++b) {
    SCOPED_TRACE(b);
    const std::byte* blk = q.data() + 18 * b;
    f16_t dh;
    std::memcpy(&dh, blk, 2);
    const float m = *std::max_element(x.begin() + 32 * b, x.begin() + 32 * b + 32,
                                      [](float u, float v) { return std::fabs(u) < std::fabs(v); });
    EXPECT_FLOAT_EQ(m, ms[b]);
    const float d = m / -8.0f;
    EXPECT_EQ(dh, f32_to_f16(d));
    for (int j = 0; j < 32; ++j) {
      const float xv = x[32 * b + j];
      // No x / d here lies within float rounding of a truncation step (k + 0.5), so any
      // fused or unfused evaluation gives these codes.
      const int want = d == 0.0f ? 8 : std::min(15, static_cast<int>(xv * (1.0f / d) + 8.5f));
      const uint8_t byte = static_cast<uint8_t>(blk[2 + j % 16]);
      const int got = j < 16 ? (byte & 15) : (byte >> 4);
      EXPECT_EQ(got, want) << "j=" << j;
      EXPECT_LE(std::fabs((got - 8) * f16_to_f32(dh) - xv), std::fabs(d) * 1.01f) << "j=" << j;
    }
  }
  EXPECT_THROW(ggml_encode(GgmlType::q4_0, x.data(), 40), Error);
}

// HF rotate-half RoPE on one head: (x[j], x[j + d/2]) rotated by pos * theta^(-2j/d).
std::vector<double> rope_half(const std::vector<double>& x, int pos, double theta) {
  const size_t d = x.size(), h = d / 2;
  std::vector<double> y(d);
  for (size_t j = 0; j < h; ++j) {
    const double a = pos * std::pow(theta, -2.0 * j / d), c = std::cos(a), s = std::sin(a);
    y[j] = x[j] * c - x[j + h] * s;
    y[j + h] = x[j + h] * c + x[j] * s;
  }
  return y;
}
// ggml's LLAMA (NORM) RoPE: adjacent pairs (x[2j], x[2j + 1]) rotated by the same angles.
std::vector<double> rope_adjacent(const std::vector<double>& x, int pos, double theta) {
  const size_t d = x.size();
  std::vector<double> y(d);
  for (size_t j = 0; j < d / 2; ++j) {
    const double a = pos * std::pow(theta, -2.0 * j / d), c = std::cos(a), s = std::sin(a);
    y[2 * j] = x[2 * j] * c - x[2 * j + 1] * s;
    y[2 * j + 1] = x[2 * j + 1] * c + x[2 * j] * s;
  }
  return y;
}

TEST(GgufFile, LlamaQkPermutation) {
  const int64_t heads = 3, hd = 8, cols = 5;
  std::vector<float> w(static_cast<size_t>(heads * hd * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  const std::vector<float> p = rope_rows_to_ggml(w.data(), heads, hd, cols);
  // convert_hf_to_gguf.py: w.reshape(heads, 2, hd / 2, cols).swapaxes(1, 2).reshape(w.shape)
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t two = 0; two < 2; ++two)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t c = 0; c < cols; ++c)
          EXPECT_EQ(p[((h * (hd / 2) + i) * 2 + two) * cols + c], w[((h * 2 + two) * (hd / 2) + i) * cols + c]);
  // What it is for: the adjacent-pair RoPE of the permuted rows is the permuted
  // rotate-half RoPE, so q . k (both permuted alike) is unchanged.
  std::vector<float> x(hd);
  for (int i = 0; i < hd; ++i) x[i] = std::sin(1.0f + i);
  const std::vector<float> xp = rope_rows_to_ggml(x.data(), 1, hd, 1);
  for (int pos : {0, 1, 7, 100}) {
    const std::vector<double> want = rope_half(std::vector<double>(x.begin(), x.end()), pos, 10000.0);
    const std::vector<float> want_f(want.begin(), want.end());
    const std::vector<float> want_p = rope_rows_to_ggml(want_f.data(), 1, hd, 1);
    const std::vector<double> got = rope_adjacent(std::vector<double>(xp.begin(), xp.end()), pos, 10000.0);
    for (int i = 0; i < hd; ++i) EXPECT_NEAR(got[i], want_p[i], 1e-6) << "pos " << pos << " row " << i;
  }
}

TEST(GgufFile, ExportTypesNamesAndFallbacks) {
  const std::string dir = test::fresh_dir("gguf_export_types");
  const Tokenizer tok = test::trained_tokenizer(PretokenizerKind::llama3);
  // Tied: no output.weight (llama.cpp reuses token_embd). ffn_down rows of d_ff = 48 are
  // not q8_0-able and fall back to F16, as the converter does.
  Model m(test::config_for(test::llama_spec(/*tie=*/true), tok.vocab_size()));
  test::randomize(m, 2);
  test::write_run(dir + "/run", m, tok, nullptr);
  GgufExportOptions o;
  o.type = GgufFileType::q8_0;
  const GgufExportReport r = export_gguf(dir + "/run", dir + "/m.gguf", o);
  const Gguf g = Gguf::read(dir + "/m.gguf");
  EXPECT_EQ(r.tensors, g.tensors.size());
  EXPECT_FALSE(g.tensors.count("output.weight"));
  EXPECT_EQ(g.tensors.at("token_embd.weight").type, 8u);
  EXPECT_EQ(g.tensors.at("blk.0.attn_q.weight").type, 8u);
  EXPECT_EQ(g.tensors.at("blk.0.attn_k.weight").ne, (std::vector<uint64_t>{32, 16}));  // 2 kv heads of 8
  EXPECT_EQ(g.tensors.at("blk.0.ffn_gate.weight").type, 8u);
  EXPECT_EQ(g.tensors.at("blk.0.ffn_down.weight").type, 1u);
  EXPECT_EQ(g.tensors.at("blk.0.ffn_down.weight").ne, (std::vector<uint64_t>{48, 32}));
  EXPECT_EQ(g.tensors.at("blk.1.attn_norm.weight").type, 0u);
  EXPECT_EQ(g.tensors.at("output_norm.weight").type, 0u);
  EXPECT_EQ(g.kv.at("general.file_type"), "7");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.pre"), "smaug-bpe");  // LLaMA-3 regex, merges applied as teddy does
  EXPECT_EQ(g.kv.at("tokenizer.ggml.add_bos_token"), "false");
  EXPECT_EQ(g.kv.at("llama.attention.head_count_kv"), "2");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.tokens"), "[" + std::to_string(m.config().vocab_size) + "]");
  EXPECT_FALSE(g.kv.count("tokenizer.chat_template"));

  // The v projection is not permuted, q is: compare with the checkpoint's rows (F32 export).
  o.type = GgufFileType::f32;
  export_gguf(dir + "/run", dir + "/m32.gguf", o);
  const Gguf g32 = Gguf::read(dir + "/m32.gguf");
  const ModelConfig& c = m.config();
  const float* qkv = m.param("layers.1.attn.qkv.weight");
  const int64_t C = c.d_model, Q = c.n_head * c.head_dim(), KV = c.n_kv_head * c.head_dim();
  EXPECT_EQ(std::memcmp(g32.data("blk.1.attn_v.weight"), qkv + (Q + KV) * C, KV * C * 4), 0);
  const std::vector<float> q = rope_rows_to_ggml(qkv, c.n_head, c.head_dim(), C);
  EXPECT_EQ(std::memcmp(g32.data("blk.1.attn_q.weight"), q.data(), Q * C * 4), 0);
  const std::vector<float> k = rope_rows_to_ggml(qkv + Q * C, c.n_kv_head, c.head_dim(), C);
  EXPECT_EQ(std::memcmp(g32.data("blk.1.attn_k.weight"), k.data(), KV * C * 4), 0);
  const float* up = m.param("layers.0.mlp.up.weight");  // [gate; up]
  EXPECT_EQ(std::memcmp(g32.data("blk.0.ffn_gate.weight"), up, c.d_ff * C * 4), 0);
  EXPECT_EQ(std::memcmp(g32.data("blk.0.ffn_up.weight"), up + c.d_ff * C, c.d_ff * C * 4), 0);

  // A write that cannot happen leaves nothing behind.
  const std::string msg = test::error_of([&] { export_gguf(dir + "/run", dir + "/no/such/dir/m.gguf", o); });
  EXPECT_TRUE(test::contains(msg, dir + "/no/such/dir/m.gguf")) << msg;
  fs::remove_all(dir);
}

TEST(GgufFile, ChatTemplateAndSpecialTokens) {
  const std::string dir = test::fresh_dir("gguf_chat");
  Tokenizer tok = test::trained_tokenizer(PretokenizerKind::gpt2);
  const ChatTemplate t = ChatTemplate::named("chatml");
  add_template_specials(tok, t);
  Model m(test::config_for({}, tok.vocab_size()));
  test::randomize(m, 4);
  test::write_run(dir + "/run", m, tok, &t);
  export_gguf(dir + "/run", dir + "/m.gguf", {});
  const Gguf g = Gguf::read(dir + "/m.gguf");
  EXPECT_EQ(g.kv.at("tokenizer.chat_template"), chat_template_jinja(t));
  EXPECT_EQ(g.kv.at("tokenizer.ggml.eos_token_id"), std::to_string(tok.eot_id()));
  // The template's end of turn, so llama.cpp stops a chat at <|im_end|>.
  EXPECT_EQ(g.kv.at("tokenizer.ggml.eot_token_id"), std::to_string(*tok.find_special("<|im_end|>")));
  EXPECT_EQ(g.kv.count("tokenizer.ggml.eom_token_id"), 0u);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(g.kv.at("general.file_type"), "1");  // f16 by default, as the converter
  EXPECT_EQ(g.tensors.at("position_embd.weight").type, 0u);
  EXPECT_EQ(g.tensors.at("blk.0.attn_qkv.weight").type, 1u);
  EXPECT_EQ(g.tensors.at("blk.0.attn_qkv.bias").type, 0u);
  fs::remove_all(dir);
}

// Llama 3's turn tokens without a chat template: <|eot_id|> is the end of turn, and
// <|eom_id|> is written as eom.
TEST(GgufFile, Llama3EndOfTurnTokens) {
  const std::string dir = test::fresh_dir("gguf_eot");
  const Tokenizer tok = test::trained_tokenizer(PretokenizerKind::llama3, 600,
                                                {"<|begin_of_text|>", "<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"});
  Model m(test::config_for(test::llama_spec(), tok.vocab_size()));
  test::randomize(m, 5);
  test::write_run(dir + "/run", m, tok);
  export_gguf(dir + "/run", dir + "/m.gguf", {});
  const Gguf g = Gguf::read(dir + "/m.gguf");
  EXPECT_EQ(g.kv.at("tokenizer.ggml.eot_token_id"), std::to_string(*tok.find_special("<|eot_id|>")));
  EXPECT_EQ(g.kv.at("tokenizer.ggml.eom_token_id"), std::to_string(*tok.find_special("<|eom_id|>")));
  fs::remove_all(dir);
}

// llama3 rope_scaling: rope_freqs.weight (F32, head_dim/2) holds the divisors
// theta^(-2j/d) / inv_freq[j] llama.cpp applies, as the converter computes them. Qwen2:
// architecture qwen2, q/k/v biases, and q/k rows left in HF's rotate-half order
// (llama.cpp runs qwen2 with NeoX RoPE), unlike LLaMA's.
TEST(GgufFile, Llama3RopeFreqsAndQwen2Layout) {
  const std::string dir = test::fresh_dir("gguf_rope_qwen2");
  const Tokenizer tok = test::trained_tokenizer(PretokenizerKind::llama3);
  test::RunSpec scaled = test::llama_spec();
  scaled.rope_theta = 5000.0f;
  scaled.rope_scaling = test::small_llama3_scaling();
  Model a(test::config_for(scaled, tok.vocab_size()));
  test::randomize(a, 6);
  test::write_run(dir + "/scaled", a, tok);
  GgufExportOptions o;
  o.type = GgufFileType::f32;
  export_gguf(dir + "/scaled", dir + "/scaled.gguf", o);
  const Gguf g = Gguf::read(dir + "/scaled.gguf");
  EXPECT_EQ(g.kv.at("general.architecture"), "llama");
  const Gguf::Info& fi = g.tensors.at("rope_freqs.weight");
  ASSERT_EQ(fi.ne, (std::vector<uint64_t>{4}));
  EXPECT_EQ(fi.type, 0u);
  // The converter's rule evaluated here from the config alone: 1 (kept), factor
  // (divided) and 1 / ((1 - s) / factor + s) between; bands per interop_test_util.h.
  const RopeScaling& rs = scaled.rope_scaling;
  for (int j = 0; j < 4; ++j) {
    const double freq = std::pow(5000.0, -2.0 * j / 8), wavelen = 2 * std::numbers::pi / freq;
    const double old_len = rs.original_max_position_embeddings;
    double want;
    if (wavelen < old_len / rs.high_freq_factor) want = 1;
    else if (wavelen > old_len / rs.low_freq_factor) want = rs.factor;
    else {
      const double sm = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      want = 1 / ((1 - sm) / rs.factor + sm);
    }
    float got;
    std::memcpy(&got, g.data("rope_freqs.weight") + 4 * j, 4);
    EXPECT_NEAR(got, want, 4 * test::kEpsF32 * want) << "j=" << j;  // one float rounding of a double ratio
  }
  EXPECT_GT(a.config().rope_scaling.factor, 1.0f);

  test::RunSpec q = test::llama_spec(true);
  q.qkv_bias = true;
  Model b(test::config_for(q, tok.vocab_size()));
  test::randomize(b, 7);
  test::write_run(dir + "/qwen2", b, tok);
  export_gguf(dir + "/qwen2", dir + "/qwen2.gguf", o);
  const Gguf h = Gguf::read(dir + "/qwen2.gguf");
  EXPECT_EQ(h.kv.at("general.architecture"), "qwen2");
  EXPECT_EQ(h.kv.at("qwen2.attention.head_count_kv"), "2");
  EXPECT_EQ(h.tensors.count("rope_freqs.weight"), 0u);
  EXPECT_EQ(h.tensors.count("blk.0.attn_output.bias"), 0u);
  EXPECT_EQ(h.tensors.count("blk.0.ffn_up.bias"), 0u);
  const ModelConfig& c = b.config();
  const int64_t C = c.d_model, Q = c.n_head * c.head_dim(), KV = c.n_kv_head * c.head_dim();
  const float* w = b.param("layers.1.attn.qkv.weight");
  const float* bias = b.param("layers.1.attn.qkv.bias");
  // Unpermuted: the GGUF rows are teddy's (= HF's) rows, weights and biases.
  EXPECT_EQ(std::memcmp(h.data("blk.1.attn_q.weight"), w, Q * C * 4), 0);
  EXPECT_EQ(std::memcmp(h.data("blk.1.attn_k.weight"), w + Q * C, KV * C * 4), 0);
  EXPECT_EQ(std::memcmp(h.data("blk.1.attn_q.bias"), bias, Q * 4), 0);
  EXPECT_EQ(std::memcmp(h.data("blk.1.attn_k.bias"), bias + Q, KV * 4), 0);
  EXPECT_EQ(std::memcmp(h.data("blk.1.attn_v.bias"), bias + Q + KV, KV * 4), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace teddy
