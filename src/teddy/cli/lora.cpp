// `teddy lora merge|export`: fold LoRA adapters into their base as a plain teddy run,
// or write a LoRA run's adapters in PEFT's format (docs/LORA.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/io/hf_peft.h"
#include "teddy/train/chat_model.h"
#include "teddy/train/optim/adamw.h"

namespace fs = std::filesystem;

namespace teddy::cli {

namespace {

// A run directory generate / export / sft model.init read: a checkpoint (fresh
// optimizer state), the tokenizer and, when given, the chat template.
void write_merged_run(const std::string& out, const Model& m, const Tokenizer& tok, const ChatTemplate* tmpl) {
  if (fs::exists(fs::path(out) / "checkpoints") && !fs::is_empty(fs::path(out) / "checkpoints"))
    throw Error(out + ": holds checkpoints already; choose a new --out");
  AdamW opt(m.layout(), AdamWConfig{});
  CheckpointState st;
  const std::string ckpt = save_checkpoint(out, m, opt, st, 0);
  tok.save((fs::path(out) / "tokenizer.json").string());
  if (tmpl) tmpl->save((fs::path(out) / "chat_template.json").string());
  std::printf("merged model written: %s (%zu parameters; tokenizer.json%s)\n", ckpt.c_str(), m.layout().count(),
              tmpl ? ", chat_template.json" : "");
}

}  // namespace

void register_lora(CLI::App& app, Run& run) {
  CLI::App* lora = app.add_subcommand("lora", "LoRA adapters: fold into the base, or export in PEFT's format");
  lora->require_subcommand(1);

  struct MergeOpts {
    std::string checkpoint, base, adapter, out, tokenizer;
  };
  auto mo = std::make_shared<MergeOpts>();
  CLI::App* merge = lora->add_subcommand("merge", "Fold adapters into their base and write a plain teddy run");
  merge->footer(
      "Either --checkpoint RUN (a `teddy sft` run with a [lora] section: its base, vocabulary and template are rebuilt\n"
      "from lora.json) or --base CHECKPOINT --adapter PEFT_DIR (an adapter_config.json + adapter_model.safetensors\n"
      "directory, e.g. from PEFT's save_pretrained). Each adapted weight becomes W0 + scale * B A (scale = alpha / r,\n"
      "rsLoRA alpha / sqrt(r)). The output is a run directory that teddy generate, export hf|gguf and sft model.init\n"
      "read. See docs/LORA.md.");
  merge->add_option("--checkpoint", mo->checkpoint, "A LoRA run directory or one of its checkpoints");
  merge->add_option("--base", mo->base, "Base checkpoint or run directory (with --adapter)");
  merge->add_option("--adapter", mo->adapter, "PEFT adapter directory (with --base)");
  merge->add_option("--tokenizer", mo->tokenizer, "Tokenizer file for --base (default: the base run's tokenizer.json)");
  merge->add_option("--out,-o", mo->out, "Run directory to write")->required();
  merge->callback([mo, &run] {
    run = [mo] {
      const bool from_run = !mo->checkpoint.empty();
      if (from_run == (!mo->base.empty() || !mo->adapter.empty()))
        throw ConfigError("teddy lora merge: give --checkpoint RUN, or --base and --adapter (not both)");
      if (from_run) {
        ChatModel cm = load_chat_model(mo->checkpoint, "", true);
        write_merged_run(mo->out, *cm.model, cm.tok, &cm.tmpl);
        return 0;
      }
      if (mo->base.empty() || mo->adapter.empty())
        throw ConfigError("teddy lora merge: --base and --adapter go together");
      ChatModel cm = load_chat_model(mo->base, mo->tokenizer, false);
      load_peft_adapter(*cm.model, mo->adapter);
      const Model merged = merge_lora(*cm.model);
      const fs::path saved = fs::path(cm.checkpoint).parent_path().parent_path() / "chat_template.json";
      std::unique_ptr<ChatTemplate> tmpl;
      if (fs::exists(saved)) tmpl = std::make_unique<ChatTemplate>(ChatTemplate::load(saved.string()));
      write_merged_run(mo->out, merged, cm.tok, tmpl.get());
      return 0;
    };
  });

  struct ExportOpts {
    std::string checkpoint, out, base_name;
  };
  auto eo = std::make_shared<ExportOpts>();
  CLI::App* exp = lora->add_subcommand("export", "Write a LoRA run's adapters as a PEFT adapter directory");
  exp->footer(
      "Writes adapter_config.json and adapter_model.safetensors with PEFT's tensor names\n"
      "(base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, GPT-2: base_model.model.transformer.h.N.attn.\n"
      "c_attn...), which PeftModel.from_pretrained loads over the Hugging Face export of the same base\n"
      "(teddy export hf --checkpoint BASE). See docs/LORA.md.");
  exp->add_option("--checkpoint", eo->checkpoint, "A LoRA run directory or one of its checkpoints")->required();
  exp->add_option("--out,-o", eo->out, "Adapter directory to write")->required();
  exp->add_option("--base-name", eo->base_name, "base_model_name_or_path to record (default: the base checkpoint)");
  exp->callback([eo, &run] {
    run = [eo] {
      ChatModel cm = load_lora_run(eo->checkpoint);
      const std::string base = !eo->base_name.empty() ? eo->base_name : cm.checkpoint;
      save_peft_adapter(*cm.model, eo->out, base);
      std::printf("wrote %s: adapter_config.json, adapter_model.safetensors (r %d, %zu adapter parameters)\n",
                  eo->out.c_str(), cm.model->lora()->r, cm.model->layout().count());
      return 0;
    };
  });
}

}  // namespace teddy::cli
