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

}  // namespace teddy
