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

// For generate: a Hugging Face directory read in memory, as load_chat_model reads a run
// (the tokenizer's missing template specials added and the vocabulary grown for chat).
// The template is resolve_chat_template(tmpl, the model's own: model_chat_template).
ChatModel load_hf_chat_model(const std::string& dir, bool chat, const ChatTemplate* tmpl = nullptr);

// For sft: imports DIR into run_dir (import_hf), or, when run_dir already holds an import
// of the same directory (its hf_extras.json names it), reuses it. Returns run_dir.
std::string import_hf_once(const std::string& dir, const std::string& run_dir, bool* reused = nullptr);

}  // namespace teddy
