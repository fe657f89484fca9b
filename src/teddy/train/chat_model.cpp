#include "teddy/train/chat_model.h"

#include <filesystem>

#include "teddy/core/error.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/data/sft/jinja_chat.h"
#include "teddy/checkpoint/shards.h"
#include "teddy/train/grow_vocab.h"
#include "teddy/train/lora_run.h"

namespace fs = std::filesystem;

namespace teddy {

ChatTemplate resolve_chat_template(const ChatTemplate* given, const std::optional<ChatTemplate>& model_template,
                                   const Tokenizer& tok, const std::string& model) {
  ChatTemplate t = given ? *given : model_template ? *model_template : ChatTemplate{};
  if (t.wants_model_template()) {
    if (!model_template)
      throw ConfigError("template \"model\": " + model +
                        " has no chat template of its own (teddy import hf keeps a model's Jinja chat_template in the run's "
                        "chat_template.json; name one: chatml, llama3, jinja:PATH)");
    ChatTemplate own = *model_template;
    if (!given->end_of_turn.empty()) own.end_of_turn = given->end_of_turn;
    if (!given->specials.empty()) own.specials = given->specials;
    t = std::move(own);
  }
  if (t.is_jinja() && t.bos_token.empty() && t.eos_token.empty()) {
    // A Jinja file's bos_token / eos_token: the model's own template's, else teddy's <|endoftext|>.
    if (model_template && model_template->is_jinja()) {
      t.bos_token = model_template->bos_token;
      t.eos_token = model_template->eos_token;
    } else if (const auto eot = tok.find_eot()) {
      t.bos_token = t.eos_token = std::string(tok.token_bytes(*eot));
    }
  }
  return t;
}

void finish_chat_template(ChatTemplate& t, const Tokenizer& tok) {
  if (t.is_jinja() && t.end_of_turn.empty()) t.end_of_turn = derive_jinja_end_of_turn(tok, t);
}

namespace {

std::optional<ChatTemplate> saved_template(const fs::path& run_dir) {
  const fs::path saved = run_dir / "chat_template.json";
  if (!fs::exists(saved)) return std::nullopt;
  return ChatTemplate::load(saved.string());
}

// A LoRA run's checkpoint: rebuild its base exactly as the run did (the base
// checkpoint, its tokenizer, the run's chat template's specials: the same grown
// vocabulary), put the adapters on, read them, fold them in.
ChatModel load_lora_run(const VerifiedCheckpoint& verified, const fs::path& run_dir, const LoraRunInfo& li,
                        const std::string& tokenizer, bool chat, const ChatTemplate* tmpl, bool merge = true) {
  const std::optional<ChatTemplate> saved = saved_template(run_dir);
  const ChatTemplate run_tmpl = saved ? *saved : ChatTemplate{};
  // The base as the run built it: with its LoRA config (straight into storage, or from
  // the directory an imported base came from), or in fp32 and then enable_lora when the
  // vocabulary had to grow; either way the same base, bit for bit.
  ChatModel base = load_chat_model(li.base, li.tokenizer, saved.has_value(), &run_tmpl, &li.lora, 0);
  if (!base.model->lora()) base.model->enable_lora(li.lora, 0);
  load_checkpoint(verified, *base.model, nullptr);  // the adapters (layout checked against the manifest)
  ChatModel cm;
  cm.model = merge ? std::make_unique<Model>(merge_lora(*base.model)) : std::move(base.model);
  cm.checkpoint = verified.info.dir;
  const std::string tok_path = !tokenizer.empty() ? tokenizer : (run_dir / "tokenizer.json").string();
  cm.tok = Tokenizer::load(tok_path);
  cm.base_vocab = cm.model->config().vocab_size;
  if (cm.tok.vocab_size() > cm.base_vocab)
    throw Error(tok_path + ": tokenizer has " + std::to_string(cm.tok.vocab_size()) + " ids but the model only " +
                std::to_string(cm.base_vocab));
  if (chat) {
    cm.tmpl = resolve_chat_template(tmpl, saved, cm.tok, run_dir.string());
    cm.added_specials = add_template_specials(cm.tok, cm.tmpl);
    finish_chat_template(cm.tmpl, cm.tok);
    if (cm.tok.vocab_size() > cm.base_vocab) {
      if (!merge) throw Error(cm.checkpoint + ": the template's specials are not in the run's tokenizer");
      cm.model = std::make_unique<Model>(grow_vocab(*cm.model, cm.tok.vocab_size()));
    }
  }
  return cm;
}

}  // namespace

ChatModel load_lora_run(const std::string& checkpoint) {
  const VerifiedCheckpoint verified = resolve_verified_checkpoint(checkpoint);
  const fs::path run_dir = fs::path(verified.info.dir).parent_path().parent_path();
  const std::optional<LoraRunInfo> li = read_lora_run_info(run_dir.string());
  if (!li) throw Error(checkpoint + ": not a LoRA run (no lora.json in " + run_dir.string() + ")");
  return load_lora_run(verified, run_dir, *li, "", fs::exists(run_dir / "chat_template.json"), nullptr, false);
}

namespace {
ImportedBaseLoader& imported_base_loader() {
  static ImportedBaseLoader f;
  return f;
}
}  // namespace

void set_imported_base_loader(ImportedBaseLoader loader) { imported_base_loader() = std::move(loader); }

ChatModel load_chat_model(const std::string& checkpoint, const std::string& tokenizer, bool chat,
                          const ChatTemplate* tmpl, const LoraConfig* lora, uint64_t lora_seed) {
  // A tokenizer named by the caller must exist: checked before the checkpoint is read,
  // and said as what it is (not "no tokenizer next to the checkpoint").
  std::error_code ec;
  if (!tokenizer.empty() && !fs::is_regular_file(tokenizer, ec))
    throw Error(tokenizer + ": tokenizer file " + (fs::exists(tokenizer, ec) ? "is not a regular file" : "not found"));
  ChatModel cm;
  const VerifiedCheckpoint verified = resolve_verified_checkpoint(checkpoint);  // each file hashed once
  const CheckpointInfo& info = verified.info;
  cm.checkpoint = info.dir;
  cm.skipped = verified.skipped;
  const fs::path run_dir = fs::path(cm.checkpoint).parent_path().parent_path();
  if (const std::optional<LoraRunInfo> li = read_lora_run_info(run_dir.string()))
    return load_lora_run(verified, run_dir, *li, tokenizer, chat, tmpl);
  const std::string tok_path = !tokenizer.empty() ? tokenizer : (run_dir / "tokenizer.json").string();
  if (!fs::exists(tok_path)) throw Error(tok_path + ": no tokenizer next to the checkpoint; pass the tokenizer file");
  cm.tok = Tokenizer::load(tok_path);
  cm.base_vocab = info.model_config.vocab_size;
  if (cm.tok.vocab_size() > cm.base_vocab)
    throw Error(tok_path + ": tokenizer has " + std::to_string(cm.tok.vocab_size()) + " ids but the model only " +
                std::to_string(cm.base_vocab));
  if (chat) {
    cm.tmpl = resolve_chat_template(tmpl, saved_template(run_dir), cm.tok, run_dir.string());
    cm.added_specials = add_template_specials(cm.tok, cm.tmpl);
    finish_chat_template(cm.tmpl, cm.tok);
  }
  if (lora && lora->enabled() && cm.tok.vocab_size() <= cm.base_vocab) {
    const ModelConfig& mc = info.model_config;
    if (const ImportedBaseLoader& load = imported_base_loader())
      if (std::unique_ptr<Model> m = load(run_dir.string(), *lora, lora_seed)) {
        const ParamLayout a = make_param_layout(m->config()), b = make_param_layout(mc);
        bool same = a.total == b.total && a.params.size() == b.params.size();
        for (size_t i = 0; same && i < a.params.size(); ++i) same = a.params[i].name == b.params[i].name && a.params[i].shape == b.params[i].shape;
        if (!same) throw Error(info.dir + ": the model its run was imported from no longer has the checkpoint's shape");
        cm.model = std::move(m);
        return cm;
      }
    // The base straight from the checkpoint's files into its storage, a range at a time.
    if (verified.manifest) {  // check_checkpoint_fits' layout check, without a model to allocate
      const ParamLayout full = make_param_layout(mc);
      const auto& man = *verified.manifest;
      bool same = man.flat_size == full.total && man.layout.size() == full.params.size();
      for (size_t i = 0; same && i < full.params.size(); ++i)
        same = man.layout[i].name == full.params[i].name && man.layout[i].offset == full.params[i].offset &&
               man.layout[i].shape == full.params[i].shape;
      if (!same)
        throw FormatError(info.dir + ": the checkpoint's tensor layout differs from its model config's");
    }
    cm.model = std::make_unique<Model>(Model::with_lora(
        mc, *lora, lora_seed, [&verified](const ParamInfo& p, int64_t row0, int64_t rows, float* out) {
          const uint64_t width = p.numel / static_cast<uint64_t>(p.shape[0]);
          const uint64_t begin = p.offset + static_cast<uint64_t>(row0) * width;
          read_checkpoint_range(verified, begin, begin + static_cast<uint64_t>(rows) * width, out, nullptr, nullptr);
        }));
    return cm;
  }
  Model base(info.model_config);
  load_checkpoint(verified, base, nullptr);
  if (cm.tok.vocab_size() > cm.base_vocab)
    cm.model = std::make_unique<Model>(grow_vocab(base, cm.tok.vocab_size()));
  else
    cm.model = std::make_unique<Model>(std::move(base));
  return cm;
}

}  // namespace teddy
