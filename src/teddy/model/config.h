#pragma once
// Model configuration: one struct for both families (GPT-2 and LLaMA).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

enum class Family { gpt2, llama };
std::string_view family_name(Family f);
Family family_from_name(std::string_view name);  // throws ConfigError

// RoPE frequency scaling (LLaMA only). llama3: Llama 3.1/3.2's rule (transformers'
// `_compute_llama3_parameters`): frequencies whose wavelength exceeds
// original_max_position_embeddings / low_freq_factor are divided by `factor`, those
// shorter than original_max_position_embeddings / high_freq_factor are kept, and the
// band between is interpolated smoothly (model/rope_freqs.h computes the table).
struct RopeScaling {
  enum class Type { none, llama3 };
  Type type = Type::none;
  float factor = 8.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
  bool operator==(const RopeScaling&) const = default;
};

struct ModelConfig {
  Family family = Family::gpt2;
  int vocab_size = 50257;         // real vocabulary (tokens the tokenizer emits)
  int padded_vocab_size = 50304;  // rows of the embedding / lm head; multiple of 64 for fast GEMMs
  int max_seq_len = 1024;         // learned positions (GPT-2) / RoPE cache length
  int n_layer = 12;
  int n_head = 12;
  int n_kv_head = 12;             // GQA: divides n_head (GPT-2: == n_head)
  int d_model = 768;
  int d_ff = 3072;                // MLP hidden width (GPT-2: 4*d_model; LLaMA: SwiGLU hidden)
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;    // LLaMA only
  RopeScaling rope_scaling;       // LLaMA only; none by default
  // Family-derived switches, set by for_family(); explicit so tests can see them.
  bool tie_embeddings = true;     // GPT-2 true, LLaMA false
  bool bias = true;               // GPT-2 true, LLaMA false
  // A bias on attn.qkv alone (Qwen2: q/k/v biases, none on o_proj or the MLP). LLaMA
  // only; redundant (and refused) with bias = true.
  bool qkv_bias = false;
  bool has_qkv_bias() const { return bias || qkv_bias; }

  int head_dim() const { return d_model / n_head; }
  int qkv_dim() const { return (n_head + 2 * n_kv_head) * head_dim(); }

  // Checks every rule and throws ConfigError naming the field and the rule,
  // e.g. "n_head: must divide d_model (d_model=768, n_head=7)".
  void validate() const;

  // Sets tie_embeddings/bias (and d_ff if 0) for the family. for_family(f) is the
  // default config (GPT-2 124M sizes) with set_family(f) applied; only the family
  // switches change, so set the sizes yourself (or start from a preset).
  static ModelConfig for_family(Family f);
  // d_ff when 0: GPT-2 4*d_model; LLaMA 8*d_model/3 rounded up to a multiple of 8.
  void set_family(Family f);
  // Round vocab_size up to a multiple of `multiple` (64 by default).
  static int pad_vocab(int vocab_size, int multiple = 64);

  // Named presets: "gpt2-124M", "gpt2-350M", "gpt2-d6" (6L/6H/384, the W2 benchmark
  // model), "llama-134M", "llama-1B" (Llama-3.2-1B shape, tied, for planning), and
  // small ones for demos ("gpt2-mini", "llama-mini": 4 layers, 128 wide, T 256) and
  // tests ("gpt2-tiny", "llama-tiny": 2 layers, 32 wide, T 64, vocab 512).
  // To use another tokenizer, set vocab_size and padded_vocab_size = pad_vocab(vocab_size).
  static ModelConfig preset(std::string_view name);  // throws ConfigError listing known names
  static std::vector<std::string> preset_names();
};

}  // namespace teddy
