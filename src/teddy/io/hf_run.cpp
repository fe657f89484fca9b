#include "teddy/io/hf_run.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/tokenizer/tokenizer_file.h"
#include "teddy/checkpoint/checkpoint.h"

namespace fs = std::filesystem;

namespace teddy {

std::string TeddyRun::chat_template() const {
  const std::string imported = extras.chat_template();
  if (!imported.empty()) return imported;
  if (!chat) return "";
  return chat->is_jinja() ? chat->jinja : chat_template_jinja(*chat);  // a Jinja template verbatim
}

HfConfigExtras TeddyRun::config_extras() const {
  if (!extras.source.empty()) return extras.config;
  return default_config_extras(tokenizer, model->config().family);
}

TeddyRun read_teddy_run(const std::string& checkpoint, const std::string& tokenizer) {
  TeddyRun r;
  const VerifiedCheckpoint verified = resolve_verified_checkpoint(checkpoint);
  r.checkpoint = verified.info.dir;
  r.skipped = verified.skipped;
  r.run_dir = fs::path(r.checkpoint).parent_path().parent_path().string();
  const std::string tok_path = !tokenizer.empty() ? tokenizer : (fs::path(r.run_dir) / "tokenizer.json").string();
  if (!fs::exists(tok_path)) throw Error(tok_path + ": no tokenizer next to the checkpoint; pass --tokenizer");
  r.tokenizer = Tokenizer::load(tok_path);
  const ModelConfig& cfg = verified.info.model_config;
  if (r.tokenizer.vocab_size() > cfg.vocab_size)
    throw Error(tok_path + ": tokenizer has " + std::to_string(r.tokenizer.vocab_size()) + " ids but the model only " +
                std::to_string(cfg.vocab_size));
  r.model = std::make_unique<Model>(cfg);
  load_checkpoint(verified, *r.model, nullptr);
  const fs::path extras = fs::path(r.run_dir) / kHfExtrasFile;
  if (fs::exists(extras)) r.extras = HfExtras::from_json(read_text_file(extras.string()), extras.string());
  const fs::path chat = fs::path(r.run_dir) / "chat_template.json";
  if (fs::exists(chat)) r.chat = ChatTemplate::load(chat.string());
  return r;
}

bool carry_hf_extras(const std::string& init_checkpoint, const std::string& run_dir, const Tokenizer& tok,
                     const ChatTemplate& tmpl) {
  // The checkpoint's run directory, as read_teddy_run finds it.
  const fs::path src = fs::path(init_checkpoint).parent_path().parent_path() / kHfExtrasFile;
  if (!fs::exists(src)) return false;
  HfExtras e = HfExtras::from_json(read_text_file(src.string()), src.string());
  // The template the run was trained on, unless the imported Jinja already renders it
  // (kept verbatim then; a base model without one gets the run's).
  const std::string imported = e.chat_template();
  const std::optional<ChatTemplate> same = imported.empty() ? std::nullopt : builtin_template_for_jinja(imported);
  if (!same || chat_template_jinja(*same) != chat_template_jinja(tmpl))
    e.tokenizer_config["chat_template"] = chat_template_jinja(tmpl);
  if (const auto end = tok.find_special(tmpl.end_of_turn); end && e.generation_config.is_object()) {
    nlohmann::json& eos = e.generation_config["eos_token_id"];
    nlohmann::json ids = eos.is_array() ? eos : eos.is_null() ? nlohmann::json::array() : nlohmann::json::array({eos});
    if (std::find(ids.begin(), ids.end(), nlohmann::json(*end)) == ids.end()) {
      ids.push_back(*end);
      eos = ids.size() == 1 ? ids[0] : ids;
    }
  }
  write_file_atomic((fs::path(run_dir) / kHfExtrasFile).string(), e.to_json());
  return true;
}

}  // namespace teddy
