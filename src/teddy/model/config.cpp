#include "teddy/model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

namespace {

// Sane upper bounds: far above any model this engine will train, low enough that
// every derived size (rows * width, vocab * width) stays inside 64-bit arithmetic
// and every kernel's `int` dimension argument stays positive.
constexpr int64_t kMaxVocab = int64_t{1} << 24;       // 16.7M tokens
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;      // 1M positions
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxWidth = int64_t{1} << 16;       // d_model
constexpr int64_t kMaxFF = int64_t{1} << 20;          // d_ff

[[noreturn]] void fail(const std::string& field, const std::string& rule, const std::string& got) {
  throw ConfigError(field + ": " + rule + " (got " + got + ")");
}

std::string num(double v) {
  std::string s = std::to_string(v);
  return s;
}

void check_range(const char* field, int64_t v, int64_t hi) {
  if (v <= 0) fail(field, "must be positive", std::to_string(v));
  if (v > hi) fail(field, "must be at most " + std::to_string(hi), std::to_string(v));
}

// LLaMA's SwiGLU width: 2/3 of 4*d_model, rounded up to a multiple of 8.
int llama_default_ff(int d_model) {
  const int64_t ff = (int64_t{8} * d_model + 2) / 3;
  return static_cast<int>((ff + 7) / 8 * 8);
}

ModelConfig make(Family f, int n_layer, int n_head, int n_kv_head, int d_model, int d_ff, int vocab,
                 int max_seq_len) {
  ModelConfig c = ModelConfig::for_family(f);
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_kv_head = n_kv_head;
  c.d_model = d_model;
  c.d_ff = d_ff;
  c.vocab_size = vocab;
  c.padded_vocab_size = ModelConfig::pad_vocab(vocab);
  c.max_seq_len = max_seq_len;
  return c;
}

struct Preset {
  const char* name;
  ModelConfig (*build)();
};

// The table of named presets (sizes in the names are parameter counts).
const Preset kPresets[] = {
    {"gpt2-124M", [] { return make(Family::gpt2, 12, 12, 12, 768, 3072, 50257, 1024); }},
    {"gpt2-350M", [] { return make(Family::gpt2, 24, 16, 16, 1024, 4096, 50257, 1024); }},
    // The W2 benchmark model: GPT-2 at depth 6.
    {"gpt2-d6", [] { return make(Family::gpt2, 6, 6, 6, 384, 1536, 50257, 1024); }},
    {"gpt2-mini", [] { return make(Family::gpt2, 4, 4, 4, 128, 512, 50257, 256); }},
    {"gpt2-tiny", [] { return make(Family::gpt2, 2, 2, 2, 32, 128, 512, 64); }},
    {"llama-134M", [] { return make(Family::llama, 12, 12, 4, 768, 2048, 32000, 2048); }},
    // Llama-3.2-1B's shape (tied embeddings, 1.24B parameters); used for planning.
    {"llama-1B",
     [] {
       ModelConfig c = make(Family::llama, 16, 32, 8, 2048, 8192, 128256, 8192);
       c.rope_theta = 500000.0f;
       c.tie_embeddings = true;
       return c;
     }},
    {"llama-mini", [] { return make(Family::llama, 4, 4, 2, 128, 344, 32000, 256); }},
    {"llama-tiny", [] { return make(Family::llama, 2, 2, 1, 32, llama_default_ff(32), 512, 64); }},
};

}  // namespace

std::string_view family_name(Family f) {
  switch (f) {
    case Family::gpt2: return "gpt2";
    case Family::llama: return "llama";
  }
  return "?";
}

Family family_from_name(std::string_view name) {
  if (name == "gpt2" || name == "gpt-2") return Family::gpt2;
  if (name == "llama") return Family::llama;
  throw ConfigError("family: expected one of gpt2, llama (got \"" + std::string(name) + "\")");
}

void ModelConfig::validate() const {
  if (family != Family::gpt2 && family != Family::llama)
    fail("family", "must be gpt2 or llama", std::to_string(static_cast<int>(family)));
  check_range("vocab_size", vocab_size, kMaxVocab);
  check_range("padded_vocab_size", padded_vocab_size, kMaxVocab);
  if (padded_vocab_size < vocab_size)
    fail("padded_vocab_size", "must be >= vocab_size (vocab_size=" + std::to_string(vocab_size) + ")",
         std::to_string(padded_vocab_size));
  check_range("max_seq_len", max_seq_len, kMaxSeqLen);
  check_range("n_layer", n_layer, kMaxLayers);
  check_range("n_head", n_head, kMaxHeads);
  check_range("n_kv_head", n_kv_head, kMaxHeads);
  check_range("d_model", d_model, kMaxWidth);
  check_range("d_ff", d_ff, kMaxFF);
  if (d_model % n_head != 0)
    fail("n_head", "must divide d_model (d_model=" + std::to_string(d_model) + ")", std::to_string(n_head));
  if (n_head % n_kv_head != 0)
    fail("n_kv_head", "must divide n_head (n_head=" + std::to_string(n_head) + ")", std::to_string(n_kv_head));
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps) || norm_eps > 1.0f)
    fail("norm_eps", "must be in (0, 1]", num(norm_eps));
  if (family == Family::gpt2) {
    if (n_kv_head != n_head)
      fail("n_kv_head", "gpt2 requires n_kv_head == n_head (n_head=" + std::to_string(n_head) + ")",
           std::to_string(n_kv_head));
    // LayerNorm always carries a bias in our kernels; a bias-free GPT-2 is not supported.
    if (!bias) fail("bias", "gpt2 requires bias = true", "false");
    if (qkv_bias) fail("qkv_bias", "llama only (gpt2's linears all have biases)", "true");
    if (rope_scaling.type != RopeScaling::Type::none) fail("rope_scaling", "llama only (gpt2 has no RoPE)", "llama3");
  } else {
    if (qkv_bias && bias) fail("qkv_bias", "must be false when bias = true (every linear already has a bias)", "true");
    if (rope_scaling.type == RopeScaling::Type::llama3) {
      const RopeScaling& r = rope_scaling;
      if (!(r.factor >= 1.0f) || !std::isfinite(r.factor)) fail("rope_scaling.factor", "must be finite and >= 1", num(r.factor));
      if (!(r.low_freq_factor > 0.0f) || !std::isfinite(r.low_freq_factor))
        fail("rope_scaling.low_freq_factor", "must be finite and > 0", num(r.low_freq_factor));
      if (!(r.high_freq_factor > r.low_freq_factor) || !std::isfinite(r.high_freq_factor))
        fail("rope_scaling.high_freq_factor", "must be finite and > low_freq_factor (" + num(r.low_freq_factor) + ")",
             num(r.high_freq_factor));
      check_range("rope_scaling.original_max_position_embeddings", r.original_max_position_embeddings, kMaxSeqLen);
    }
    if (head_dim() % 2 != 0)
      fail("d_model", "llama RoPE requires an even head_dim = d_model / n_head", std::to_string(head_dim()));
    if (!(rope_theta > 1.0f) || !std::isfinite(rope_theta))
      fail("rope_theta", "must be finite and > 1", num(rope_theta));
  }
}

ModelConfig ModelConfig::for_family(Family f) {
  ModelConfig c;
  c.set_family(f);
  return c;
}

void ModelConfig::set_family(Family f) {
  family = f;
  if (f == Family::gpt2) {
    tie_embeddings = true;
    bias = true;
    if (d_ff == 0) d_ff = 4 * d_model;
  } else {
    tie_embeddings = false;
    bias = false;
    if (d_ff == 0) d_ff = llama_default_ff(d_model);
  }
}

int ModelConfig::pad_vocab(int vocab_size, int multiple) {
  if (multiple <= 0) fail("multiple", "must be positive", std::to_string(multiple));
  if (vocab_size <= 0) fail("vocab_size", "must be positive", std::to_string(vocab_size));
  const int64_t padded = (static_cast<int64_t>(vocab_size) + multiple - 1) / multiple * multiple;
  if (padded > INT32_MAX) fail("vocab_size", "padded size must fit in int32", std::to_string(padded));
  return static_cast<int>(padded);
}

ModelConfig ModelConfig::preset(std::string_view name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p.build();
  std::string known;
  for (const Preset& p : kPresets) known += (known.empty() ? "" : ", ") + std::string(p.name);
  throw ConfigError("model: unknown preset \"" + std::string(name) + "\" (known: " + known + ")");
}

std::vector<std::string> ModelConfig::preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

}  // namespace teddy
