#pragma once
// Loading a checkpoint for generation or SFT: model, tokenizer and (for chat) the
// chat template, with the template's special tokens added and the vocabulary grown
// to match when the checkpoint predates them (a pretrained model about to be
// finetuned, or evaluated with the template before finetuning).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"

namespace teddy {

struct ChatModel {
  std::unique_ptr<Model> model;
  Tokenizer tok;
  ChatTemplate tmpl;        // meaningful when loaded with chat
  std::string checkpoint;   // the checkpoint directory actually loaded
  int base_vocab = 0;       // the checkpoint's vocabulary
  int added_specials = 0;   // template tokens the tokenizer lacked
  std::vector<std::string> skipped;  // a run directory's newer checkpoints passed over, "dir: why"
};

// The template a load uses: `given` if any, else the model's own (`model_template`: a
// run's chat_template.json, an imported model's Jinja), else chatml. `given` named
// "model" becomes the model's own (its end_of_turn / specials, when set, kept); a
// Jinja template's bos_token / eos_token, when unset, are the model's own template's,
// else the tokenizer's <|endoftext|>. Throws ConfigError for "model" without one.
ChatTemplate resolve_chat_template(const ChatTemplate* given, const std::optional<ChatTemplate>& model_template,
                                   const Tokenizer& tok, const std::string& model);
// After its specials are in `tok`: a Jinja template's end_of_turn, derived when unset.
void finish_chat_template(ChatTemplate& t, const Tokenizer& tok);

// `checkpoint`: a checkpoint directory or a run directory (its newest intact one).
// `tokenizer`: a tokenizer file, or "" for tokenizer.json of the checkpoint's run.
// With chat, the template is resolve_chat_template(tmpl, the run's chat_template.json);
// its missing specials are added and the model grown (grow_vocab: new rows = mean of the old). Throws Error if the tokenizer has
// more ids than the model before that.
// A LoRA run's checkpoint (its run directory has lora.json, train/lora_run.h) loads as
// the run's base with the adapters folded in (merge_lora).
// With `lora` (a plain base, and no vocabulary to grow): the model comes back with LoRA
// on (seed lora_seed), its base read from the checkpoint straight into its storage a
// chunk at a time (Model::with_lora): a QLoRA base never exists in fp32 in memory.
// With `lora`, a run imported from elsewhere may have its base read from there instead
// of from its checkpoint: `loader(run_dir, lora, seed)` returns the LoRA model, or
// nullptr to read the checkpoint. The interop layer installs one
// (install_hf_bnb4_base_loader, io/hf_import.h): an import of a bitsandbytes 4-bit
// directory trains on that file's NF4 codes, not on a re-quantization of their
// dequantized fp32 copy. The model's config must equal the checkpoint's (Error).
using ImportedBaseLoader =
    std::function<std::unique_ptr<Model>(const std::string& run_dir, const LoraConfig& lora, uint64_t seed)>;
void set_imported_base_loader(ImportedBaseLoader loader);

ChatModel load_chat_model(const std::string& checkpoint, const std::string& tokenizer, bool chat,
                          const ChatTemplate* tmpl = nullptr,
                          const LoraConfig* lora = nullptr, uint64_t lora_seed = 0);

// A LoRA run's checkpoint as the run trained it: the base (vocabulary grown as the run
// did) with the adapters on and not folded in (for export as a PEFT adapter). The
// tokenizer and template are the run's. Throws Error if the run has no lora.json.
ChatModel load_lora_run(const std::string& checkpoint);

}  // namespace teddy
