#pragma once
// `teddy export gguf --checkpoint RUN --out FILE.gguf [--type f32|f16|bf16|q8_0|q4_0]`: a teddy
// checkpoint as a GGUF v3 file that llama.cpp (and what embeds it: ollama,
// node-llama-cpp) runs, following llama.cpp's convert_hf_to_gguf.py:
//   architecture "gpt2" or "llama" and its hyperparameter keys, tensor names
//   (token_embd, position_embd, blk.N.attn_qkv | attn_q/k/v, attn_output, ffn_up/gate/down,
//   attn_norm, ffn_norm, output_norm, output), LLaMA's q/k rows permuted from HF's
//   rotate-half order to ggml's interleaved pairs, 1-D tensors and GPT-2's position
//   embedding kept F32, q8_0 / q4_0 falling back to F16 for rows not a multiple of 32;
//   the tokenizer as tokenizer.ggml.model "gpt2" (byte-level BPE: tokens in GPT-2's byte
//   alphabet, token types, merges, bos/eos ids, add_bos/add_eos, pre-tokenizer "gpt-2" or
//   "llama-bpe") and tokenizer.chat_template.
#include <cstdint>
#include <map>
#include <vector>
#include <string>

#include "teddy/io/gguf_file.h"
#include "teddy/io/hf_run.h"

namespace teddy {

enum class GgufFileType { f32, f16, bf16, q8_0, q4_0 };
// "f32" | "f16" | "bf16" | "q8_0" | "q4_0"; throws ConfigError
GgufFileType gguf_file_type_from_name(const std::string& name);

struct GgufExportOptions {
  std::string tokenizer;                // "" : the run's tokenizer.json
  GgufFileType type = GgufFileType::f16;  // the converter's default for an fp32 model
  std::string name;                     // general.name; "" : the run directory's name
};

struct GgufExportReport {
  std::string out_file, checkpoint, architecture, pre_tokenizer;
  std::vector<std::string> skipped;  // damaged newer checkpoints passed over, "dir: why"
  size_t tensors = 0, tokens = 0, merges = 0;
  uint64_t bytes = 0;
  std::map<std::string, int> types;  // ggml type name -> tensors
};

GgufExportReport export_gguf(const std::string& checkpoint, const std::string& out_file, const GgufExportOptions& opts);
GgufExportReport write_gguf(const TeddyRun& run, const std::string& out_file, const GgufExportOptions& opts);

// ggml's interleaved RoPE layout from HF's rotate-half one, per head of `head_dim` rows of
// `cols` each: row h*HS + 2i + k <- row h*HS + k*HS/2 + i (convert_hf_to_gguf's permute).
std::vector<float> rope_rows_to_ggml(const float* rows, int64_t n_heads, int64_t head_dim, int64_t cols);

}  // namespace teddy
