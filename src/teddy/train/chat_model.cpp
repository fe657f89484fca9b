#include "teddy/train/chat_model.h"

#include <filesystem>

#include "teddy/core/error.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/train/grow_vocab.h"

namespace fs = std::filesystem;

namespace teddy {

ChatModel load_chat_model(const std::string& checkpoint, const std::string& tokenizer, bool chat,
                          const ChatTemplate* tmpl) {
  ChatModel cm;
  const VerifiedCheckpoint verified = resolve_verified_checkpoint(checkpoint);  // each file hashed once
  const CheckpointInfo& info = verified.info;
  cm.checkpoint = info.dir;
  cm.skipped = verified.skipped;
  const fs::path run_dir = fs::path(cm.checkpoint).parent_path().parent_path();
  const std::string tok_path = !tokenizer.empty() ? tokenizer : (run_dir / "tokenizer.json").string();
  if (!fs::exists(tok_path)) throw Error(tok_path + ": no tokenizer next to the checkpoint; pass the tokenizer file");
  cm.tok = Tokenizer::load(tok_path);
  cm.base_vocab = info.model_config.vocab_size;
  if (cm.tok.vocab_size() > cm.base_vocab)
    throw Error(tok_path + ": tokenizer has " + std::to_string(cm.tok.vocab_size()) + " ids but the model only " +
                std::to_string(cm.base_vocab));
  Model base(info.model_config);
  load_checkpoint(verified, base, nullptr);
  if (chat) {
    const fs::path saved = run_dir / "chat_template.json";
    cm.tmpl = tmpl ? *tmpl : fs::exists(saved) ? ChatTemplate::load(saved.string()) : ChatTemplate{};
    cm.added_specials = add_template_specials(cm.tok, cm.tmpl);
  }
  if (cm.tok.vocab_size() > cm.base_vocab)
    cm.model = std::make_unique<Model>(grow_vocab(base, cm.tok.vocab_size()));
  else
    cm.model = std::make_unique<Model>(std::move(base));
  return cm;
}

}  // namespace teddy
