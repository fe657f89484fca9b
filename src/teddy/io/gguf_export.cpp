#include "teddy/io/gguf_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "teddy/core/error.h"
#include "teddy/model/rope_freqs.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

using json = nlohmann::json;

// llama.cpp's token types (llama_token_type / gguf.TokenType).
enum TokenType : int32_t { kNormal = 1, kControl = 3, kUnused = 5 };

// general.file_type: llama_ftype.
uint32_t file_type_code(GgufFileType t) {
  switch (t) {
    case GgufFileType::f32: return 0;   // ALL_F32
    case GgufFileType::f16: return 1;   // MOSTLY_F16
    case GgufFileType::q8_0: return 7;  // MOSTLY_Q8_0
    case GgufFileType::q4_0: return 2;  // MOSTLY_Q4_0
    case GgufFileType::bf16: return 32; // MOSTLY_BF16
  }
  return 0;
}

// A special token's id: tokenizer_config's `key` (text -> id), else config.json's id
// (the first of a list), else `fallback`.
std::optional<uint32_t> token_id(const TeddyRun& run, const char* tc_key, const json& config_id,
                                 std::optional<uint32_t> fallback) {
  const json& tc = run.extras.tokenizer_config;
  if (tc.contains(tc_key)) {
    const json& v = tc[tc_key];
    const std::string text = v.is_string() ? v.get<std::string>() : v.is_object() ? v.value("content", "") : "";
    if (const auto id = run.tokenizer.find_special(text)) return id;
  }
  if (config_id.is_number_unsigned()) return config_id.get<uint32_t>();
  if (config_id.is_array() && !config_id.empty() && config_id[0].is_number_unsigned()) return config_id[0].get<uint32_t>();
  return fallback;
}

void add_tokenizer(GgufWriter& w, const TeddyRun& run, GgufExportReport& r) {
  const Tokenizer& tok = run.tokenizer;
  const BpeVocab& v = tok.vocab();
  const int V = run.model->config().vocab_size;
  std::vector<std::string> tokens(static_cast<size_t>(V));
  std::vector<int32_t> types(static_cast<size_t>(V), kUnused);
  for (int id = 0; id < V; ++id) {
    if (static_cast<size_t>(id) < v.tokens.size() && !v.tokens[id].empty()) {
      tokens[id] = to_byte_alphabet(v.tokens[id]);
      types[id] = kNormal;
    } else {
      tokens[id] = "[PAD" + std::to_string(id) + "]";  // as the converter names ids no token has
    }
  }
  for (const auto& [text, id] : v.specials) {
    tokens[id] = text;
    types[id] = kControl;
  }
  const json hf = json::parse(tok.to_hf_json());
  std::vector<std::string> merges = hf["model"]["merges"].get<std::vector<std::string>>();
  // llama.cpp names a pre-tokenizer for its regex and whether a piece that is itself a
  // token is emitted whole before any merge (ignore_merges). "llama-bpe" (Llama 3's name)
  // has the LLaMA-3 regex with ignore_merges; "smaug-bpe" has the same regex without it
  // (teddy's own trained tokenizers), "gpt-2" the GPT-2 regex without it.
  if (tok.pattern() == PretokenizerKind::gpt2) r.pre_tokenizer = "gpt-2";
  else r.pre_tokenizer = v.whole_piece_first ? "llama-bpe" : "smaug-bpe";
  r.tokens = tokens.size();
  r.merges = merges.size();
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", r.pre_tokenizer);
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", merges);

  const std::optional<uint32_t> eot = tok.find_eot();
  const HfConfigExtras ce = run.config_extras();
  if (const auto bos = token_id(run, "bos_token", ce.bos_token_id, eot)) w.add_u32("tokenizer.ggml.bos_token_id", *bos);
  if (const auto eos = token_id(run, "eos_token", ce.eos_token_id, eot)) w.add_u32("tokenizer.ggml.eos_token_id", *eos);
  if (const auto unk = token_id(run, "unk_token", nullptr, std::nullopt)) w.add_u32("tokenizer.ggml.unknown_token_id", *unk);
  if (const auto pad = token_id(run, "pad_token", ce.pad_token_id, std::nullopt))
    w.add_u32("tokenizer.ggml.padding_token_id", *pad);
  // End of a chat turn, which llama.cpp adds to its end-of-generation set (so a chat
  // stops at <|eot_id|> / <|im_end|>, not only at eos): the run's chat template's
  // end_of_turn, else the token Llama 3, ChatML / Qwen2, Phi-3 or Gemma end a turn with.
  std::optional<uint32_t> end_of_turn;
  if (run.chat) end_of_turn = tok.find_special(run.chat->end_of_turn);
  for (const char* t : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"})
    if (!end_of_turn) end_of_turn = tok.find_special(t);
  if (end_of_turn) w.add_u32("tokenizer.ggml.eot_token_id", *end_of_turn);
  // Llama 3.1's end of a tool-call message.
  if (const auto eom = tok.find_special("<|eom_id|>")) w.add_u32("tokenizer.ggml.eom_token_id", *eom);
  // teddy's encoder adds no BOS/EOS; say so, or llama.cpp's llama-bpe default adds a BOS.
  const json& tc = run.extras.tokenizer_config;
  w.add_bool("tokenizer.ggml.add_bos_token", tc.value("add_bos_token", false));
  w.add_bool("tokenizer.ggml.add_eos_token", tc.value("add_eos_token", false));
  const std::string chat = run.chat_template();
  if (!chat.empty()) w.add_string("tokenizer.chat_template", chat);
  if (tc.contains("chat_template") && tc["chat_template"].is_array())  // named templates, as the converter writes them
    for (const json& e : tc["chat_template"])
      if (e.value("name", "") != "default")
        w.add_string("tokenizer.chat_template." + e.value("name", ""), e.value("template", ""));
}

}  // namespace

GgufFileType gguf_file_type_from_name(const std::string& name) {
  if (name == "f32") return GgufFileType::f32;
  if (name == "f16") return GgufFileType::f16;
  if (name == "bf16") return GgufFileType::bf16;
  if (name == "q8_0") return GgufFileType::q8_0;
  if (name == "q4_0") return GgufFileType::q4_0;
  throw ConfigError("--type: expected f32, f16, bf16, q8_0 or q4_0 (got \"" + name + "\")");
}

std::vector<float> rope_rows_to_ggml(const float* rows, int64_t n_heads, int64_t head_dim, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(n_heads * head_dim * cols));
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t k = 0; k < 2; ++k) {
        const float* src = rows + (h * head_dim + k * half + i) * cols;
        std::copy(src, src + cols, out.begin() + (h * head_dim + 2 * i + k) * cols);
      }
  return out;
}

GgufExportReport write_gguf(const TeddyRun& run, const std::string& out_file, const GgufExportOptions& opts) {
  const Model& m = *run.model;
  const ModelConfig& c = m.config();
  const bool gpt2 = c.family == Family::gpt2;
  // Qwen2 (q/k/v biases alone) is llama.cpp's "qwen2": the LLaMA tensors plus the q/k/v
  // biases, with NeoX (rotate-half) RoPE, so its q/k rows are not permuted.
  const bool qwen2 = c.qkv_bias;
  const std::string arch = gpt2 ? "gpt2" : qwen2 ? "qwen2" : "llama";
  // llama.cpp's qwen2 graph reads no rope_freqs tensor.
  if (qwen2 && c.rope_scaling.type != RopeScaling::Type::none)
    throw FormatError(run.checkpoint + ": a Qwen2 model with llama3 rope_scaling has no GGUF form (llama.cpp's qwen2 has no frequency factors)");
  const int64_t rope_perm = qwen2 ? 0 : 1;  // 0: keep HF's rotate-half rows
  GgufExportReport r;
  r.out_file = out_file;
  r.checkpoint = run.checkpoint;
  r.skipped = run.skipped;
  r.architecture = arch;

  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.type", "model");
  std::string name = opts.name;
  if (name.empty()) name = fs::path(run.run_dir).filename().string();
  if (name.empty()) name = "teddy";
  w.add_string("general.name", name);
  const std::string a = arch + ".";
  w.add_u32(a + "context_length", static_cast<uint32_t>(c.max_seq_len));
  w.add_u32(a + "embedding_length", static_cast<uint32_t>(c.d_model));
  w.add_u32(a + "block_count", static_cast<uint32_t>(c.n_layer));
  w.add_u32(a + "feed_forward_length", static_cast<uint32_t>(c.d_ff));
  w.add_u32(a + "attention.head_count", static_cast<uint32_t>(c.n_head));
  if (gpt2) {
    w.add_f32(a + "attention.layer_norm_epsilon", c.norm_eps);
  } else {
    w.add_u32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));
    w.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_head));
    w.add_f32(a + "rope.freq_base", c.rope_theta);
    w.add_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
    w.add_u32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim()));
    w.add_u32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim()));
    w.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(c.head_dim()));
  }
  w.add_u32("general.file_type", file_type_code(opts.type));
  w.add_u32("general.quantization_version", 2);
  add_tokenizer(w, run, r);

  // One GGUF tensor: rows of a teddy tensor, optionally RoPE-permuted (rope_heads > 0).
  const int64_t C = c.d_model, V = c.vocab_size, F = c.d_ff, HS = c.head_dim();
  const int64_t Q = c.n_head * HS, KV = c.n_kv_head * HS;
  auto add = [&](const std::string& gguf_name, const std::string& teddy_name, int64_t row_begin, int64_t rows,
                 int64_t cols, int64_t rope_heads = 0) {
    const bool vector = cols == 1;  // norms and biases
    std::vector<uint64_t> ne = vector ? std::vector<uint64_t>{static_cast<uint64_t>(rows)}
                                      : std::vector<uint64_t>{static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
    GgmlType t = GgmlType::f32;
    if (!vector && gguf_name != "position_embd.weight") {
      switch (opts.type) {
        case GgufFileType::f32: t = GgmlType::f32; break;
        case GgufFileType::f16: t = GgmlType::f16; break;
        case GgufFileType::bf16: t = GgmlType::bf16; break;
        case GgufFileType::q8_0: t = cols % kQ8Block == 0 ? GgmlType::q8_0 : GgmlType::f16; break;
        case GgufFileType::q4_0: t = cols % kQ4Block == 0 ? GgmlType::q4_0 : GgmlType::f16; break;
      }
    }
    ++r.types[ggml_type_name(t)];
    const float* p = m.params() + m.layout().find(teddy_name).offset + static_cast<size_t>(row_begin * cols);
    const size_t n = static_cast<size_t>(rows * cols);
    w.add_tensor(gguf_name, std::move(ne), t, [=] {
      if (rope_heads == 0) return ggml_encode(t, p, n);
      const std::vector<float> f = rope_rows_to_ggml(p, rope_heads, HS, cols);
      return ggml_encode(t, f.data(), n);
    });
  };
  add("token_embd.weight", "tok_emb.weight", 0, V, C);
  if (c.rope_scaling.type == RopeScaling::Type::llama3) {
    // As the converter (LlamaModel.generate_extra_tensors): the per-frequency divisors
    // llama.cpp applies (angle = pos * theta^(-2j/d) / rope_freqs[j]), F32, HS/2 of them.
    // From the model's own tables, so they divide out exactly what teddy's RoPE scales.
    const std::vector<double> base = rope_inv_freq(c.rope_theta, c.head_dim(), RopeScaling{});
    const std::vector<double>& scaled = m.rope_inv_freq();
    std::vector<float> factors(base.size());
    for (size_t j = 0; j < base.size(); ++j) factors[j] = static_cast<float>(base[j] / scaled[j]);
    ++r.types[ggml_type_name(GgmlType::f32)];
    w.add_tensor("rope_freqs.weight", {static_cast<uint64_t>(factors.size())}, GgmlType::f32,
                 [factors] { return ggml_encode(GgmlType::f32, factors.data(), factors.size()); });
  }
  if (gpt2) add("position_embd.weight", "pos_emb.weight", 0, c.max_seq_len, C);
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", l = "layers." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", l + "norm1.weight", 0, C, 1);
    if (gpt2) add(b + "attn_norm.bias", l + "norm1.bias", 0, C, 1);
    if (gpt2) {
      add(b + "attn_qkv.weight", l + "attn.qkv.weight", 0, c.qkv_dim(), C);
      add(b + "attn_qkv.bias", l + "attn.qkv.bias", 0, c.qkv_dim(), 1);
    } else {
      add(b + "attn_q.weight", l + "attn.qkv.weight", 0, Q, C, rope_perm * c.n_head);
      add(b + "attn_k.weight", l + "attn.qkv.weight", Q, KV, C, rope_perm * c.n_kv_head);
      add(b + "attn_v.weight", l + "attn.qkv.weight", Q + KV, KV, C);
      if (c.has_qkv_bias()) {
        add(b + "attn_q.bias", l + "attn.qkv.bias", 0, Q, 1, rope_perm * c.n_head);
        add(b + "attn_k.bias", l + "attn.qkv.bias", Q, KV, 1, rope_perm * c.n_kv_head);
        add(b + "attn_v.bias", l + "attn.qkv.bias", Q + KV, KV, 1);
      }
    }
    add(b + "attn_output.weight", l + "attn.proj.weight", 0, C, Q);
    if (c.bias) add(b + "attn_output.bias", l + "attn.proj.bias", 0, C, 1);
    add(b + "ffn_norm.weight", l + "norm2.weight", 0, C, 1);
    if (gpt2) add(b + "ffn_norm.bias", l + "norm2.bias", 0, C, 1);
    if (gpt2) {
      add(b + "ffn_up.weight", l + "mlp.up.weight", 0, F, C);
      add(b + "ffn_up.bias", l + "mlp.up.bias", 0, F, 1);
    } else {
      add(b + "ffn_gate.weight", l + "mlp.up.weight", 0, F, C);
      add(b + "ffn_up.weight", l + "mlp.up.weight", F, F, C);
      if (c.bias) {
        add(b + "ffn_gate.bias", l + "mlp.up.bias", 0, F, 1);
        add(b + "ffn_up.bias", l + "mlp.up.bias", F, F, 1);
      }
    }
    add(b + "ffn_down.weight", l + "mlp.down.weight", 0, C, F);
    if (c.bias) add(b + "ffn_down.bias", l + "mlp.down.bias", 0, C, 1);
  }
  add("output_norm.weight", "final_norm.weight", 0, C, 1);
  if (gpt2) add("output_norm.bias", "final_norm.bias", 0, C, 1);
  // A tied head has no tensor: llama.cpp reuses token_embd.weight when output.weight is absent.
  if (!c.tie_embeddings) add("output.weight", "lm_head.weight", 0, V, C);
  r.tensors = w.tensor_count();
  w.write(out_file);
  r.bytes = fs::file_size(out_file);
  return r;
}

GgufExportReport export_gguf(const std::string& checkpoint, const std::string& out_file, const GgufExportOptions& opts) {
  return write_gguf(read_teddy_run(checkpoint, opts.tokenizer), out_file, opts);
}

}  // namespace teddy
