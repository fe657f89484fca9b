#pragma once
// What `teddy export hf` and `teddy export gguf` read from a teddy run: the checkpoint
// (through the public loader, checkpoint/checkpoint.h), the tokenizer beside it, the chat
// template (chat_template.json) and, for an imported model, hf_extras.json.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/io/hf_extras.h"
#include "teddy/model/model.h"

namespace teddy {

struct TeddyRun {
  std::unique_ptr<Model> model;
  Tokenizer tokenizer;
  HfExtras extras;                    // source empty: a run teddy trained itself
  std::optional<ChatTemplate> chat;   // the run's chat_template.json, if any
  std::string checkpoint, run_dir;
  std::vector<std::string> skipped;   // the run directory's newer checkpoints passed over (damaged), "dir: why"

  // The Jinja chat template to publish: the imported one, else chat_template.json's
  // (chat_template_jinja), else "".
  std::string chat_template() const;
  // config.json's token ids: the imported ones, else the tokenizer's <|endoftext|>.
  HfConfigExtras config_extras() const;
};

// `checkpoint`: a checkpoint directory or a run directory (its newest intact
// checkpoint); `tokenizer`: a tokenizer file or "" for the run's tokenizer.json.
// Throws Error if the tokenizer has more ids than the model's vocabulary.
TeddyRun read_teddy_run(const std::string& checkpoint, const std::string& tokenizer);

// Finetuning an imported model (`teddy sft`, model.init a run with hf_extras.json, or
// hf:DIR) writes a new run directory: this carries the init run's hf_extras.json into
// `run_dir`, so `export hf` / `export gguf` of the finetuned run write the imported
// model's tokenizer_config keys, generation_config and config.json token ids again.
// What finetuning changed is reflected: the imported Jinja chat_template is kept only
// when it renders the template the run trained with (else that template's own Jinja
// replaces it), and the template's end-of-turn token joins
// generation_config's eos_token_id when it is not there. Written atomically. Returns
// false (and writes nothing) when the init run has no hf_extras.json.
bool carry_hf_extras(const std::string& init_checkpoint, const std::string& run_dir, const Tokenizer& tok,
                     const ChatTemplate& tmpl);

}  // namespace teddy
