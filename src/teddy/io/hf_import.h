#pragma once
// `teddy import hf DIR --out RUN_DIR`: a Hugging Face model directory (GPT2LMHeadModel or
// LlamaForCausalLM; config.json, model.safetensors or a sharded index, tokenizer.json,
// tokenizer_config.json, generation_config.json) becomes a teddy run directory:
//   RUN_DIR/checkpoints/step_00000000/   the weights (fp32) and a fresh AdamW state,
//                                        written by save_checkpoint like any checkpoint
//   RUN_DIR/tokenizer.json               teddy's tokenizer file
//   RUN_DIR/hf_extras.json               what export hf writes back (hf_extras.h)
//   RUN_DIR/chat_template.json           the model's chat template as teddy runs it
//                                        (model_chat_template: a built-in one, or the Jinja)
// Everything is read and checked before anything is written, and the run directory is
// renamed into place whole (hf_staging.h). See docs/INTEROP.md.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "teddy/tokenizer/tokenizer.h"
#include "teddy/io/hf_extras.h"
#include "teddy/model/model.h"
#include "teddy/train/chat_model.h"

namespace teddy {

struct HfModel {
  std::unique_ptr<Model> model;  // fp32 parameters, padding rows zero
  Tokenizer tokenizer;
  HfExtras extras;
  std::map<std::string, int64_t> dtypes;  // tensor dtype -> tensors of it
  std::vector<std::string> notes;         // what was read but not kept (ignored keys, buffers)
};

// Reads and checks a Hugging Face model directory. Throws FormatError naming the file
// and key (or tensor) for anything teddy cannot represent exactly: see docs/INTEROP.md.
HfModel read_hf_model(const std::string& dir);

struct HfImportReport {
  std::string run_dir, checkpoint, architecture;
  ModelConfig config;
  size_t parameters = 0;
  std::map<std::string, int64_t> dtypes;
  std::vector<std::string> notes;
  std::string chat_template;  // "chatml" / "llama3" / "model" (Jinja) when chat_template.json was written, else ""
};

// read_hf_model, then writes the run directory (which must not exist, or be empty).
HfImportReport import_hf(const std::string& dir, const std::string& run_dir);

// `--model hf:DIR`. Strips the "hf:" prefix: "" when `spec` has none.
std::string hf_model_dir(const std::string& spec);

// A bitsandbytes 4-bit Hugging Face directory (config.json's quantization_config:
// load_in_4bit, nf4; io/hf_bnb4.h) as a LoRA model: with lora.quantize nf4 every module's
// packed codes and constants go straight into the base's NF4 storage (Model::with_lora's
// Nf4Source: bit for bit the file's), the plain tensors (embeddings, norms, biases,
// head) a chunk at a time; no fp32 copy of the model ever exists. With quantize none /
// bf16 the modules are dequantized one at a time. Throws FormatError as read_hf_model
// (a module's tensors checked by read_bnb4_linear), Error if DIR is not bitsandbytes 4-bit.
Model read_hf_bnb4_lora(const std::string& dir, const LoraConfig& lora, uint64_t seed, Context ctx = {});
// Does DIR/config.json have a bitsandbytes 4-bit quantization_config (FormatError for a
// quantization teddy does not read)?
bool is_hf_bnb4_dir(const std::string& dir);
// Installs load_chat_model's imported-base loader (train/chat_model.h): a QLoRA base
// (lora.quantize nf4) of a run imported from a bitsandbytes 4-bit directory is read
// from that directory's NF4 codes (read_hf_bnb4_lora), not re-quantized from the
// import's dequantized fp32 checkpoint. The CLI and the sft job install it.
void install_hf_bnb4_base_loader();

// For generate: a Hugging Face directory read in memory, as load_chat_model reads a run
// (the tokenizer's missing template specials added and the vocabulary grown for chat).
// The template is resolve_chat_template(tmpl, the model's own: model_chat_template).
ChatModel load_hf_chat_model(const std::string& dir, bool chat, const ChatTemplate* tmpl = nullptr);

// For sft: imports DIR into run_dir (import_hf), or, when run_dir already holds an import
// of the same directory (its hf_extras.json names it), reuses it. Returns run_dir.
std::string import_hf_once(const std::string& dir, const std::string& run_dir, bool* reused = nullptr);

}  // namespace teddy
