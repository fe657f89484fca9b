// `teddy import hf DIR --out RUN_DIR`: a Hugging Face model directory becomes a teddy
// run directory (io/hf_import.h; docs/INTEROP.md).
#include <cstdio>
#include <memory>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/core/memory_usage.h"
#include "teddy/io/hf_import.h"

namespace teddy::cli {

void register_import(CLI::App& app, Run& run) {
  CLI::App* imp = app.add_subcommand("import", "Bring an outside model in as a teddy run directory");
  imp->require_subcommand(1);
  struct Opts {
    std::string dir, out;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* hf = imp->add_subcommand("hf", "A Hugging Face model directory (GPT2LMHeadModel, LlamaForCausalLM)");
  hf->footer(
      "Reads config.json, model.safetensors or a sharded model.safetensors.index.json (F32, F16 or BF16; a\n"
      "bitsandbytes 4-bit NF4 model's linears dequantized),\n"
      "tokenizer.json (byte-level BPE), tokenizer_config.json (special tokens, chat_template kept as text) and\n"
      "generation_config.json. Writes RUN_DIR/checkpoints/step_00000000 (fp32 weights, fresh AdamW state), which\n"
      "generate, sft and pretrain --resume read, RUN_DIR/tokenizer.json and RUN_DIR/hf_extras.json (what export hf\n"
      "writes back). Anything teddy cannot represent exactly is refused, naming the file and key; nothing is\n"
      "written then. See docs/INTEROP.md.");
  hf->add_option("dir", o->dir, "The Hugging Face model directory")->required();
  hf->add_option("--out,-o", o->out, "Run directory to create (must not exist, or be empty)")->required();
  hf->callback([o, &run] {
    run = [o] {
      const HfImportReport r = import_hf(o->dir, o->out);
      std::string dtypes;
      for (const auto& [d, n] : r.dtypes) dtypes += (dtypes.empty() ? "" : ", ") + std::to_string(n) + " " + d;
      std::printf("imported %s: %s, %d layers, d_model %d, %d heads (%d kv), vocab %d, %zu parameters (%s)\n",
                  o->dir.c_str(), r.architecture.c_str(), r.config.n_layer, r.config.d_model, r.config.n_head,
                  r.config.n_kv_head, r.config.vocab_size, r.parameters, dtypes.c_str());
      std::printf("checkpoint: %s\n", r.checkpoint.c_str());
      if (!r.chat_template.empty())
        std::printf("chat template: %s (chat_template.json written for generate --chat)\n", r.chat_template.c_str());
      for (const std::string& n : r.notes) std::printf("# %s\n", n.c_str());
      return 0;
    };
  });
}

}  // namespace teddy::cli
