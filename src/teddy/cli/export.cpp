// `teddy export hf|gguf`: a teddy checkpoint as a Hugging Face model directory or a GGUF
// file for llama.cpp (io/hf_export.h, io/gguf_export.h; docs/INTEROP.md).
#include <cstdio>
#include <memory>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/io/gguf_export.h"
#include "teddy/io/hf_export.h"
#include "teddy/plan/units.h"

namespace teddy::cli {

void register_export(CLI::App& app, Run& run) {
  CLI::App* exp = app.add_subcommand("export", "Write a checkpoint in an outside format (Hugging Face, GGUF)");
  exp->require_subcommand(1);

  struct HfOpts {
    std::string checkpoint, out, tokenizer, dtype = "f32", max_shard = "5GB", quantize = "none";
    bool no_double_quant = false;
  };
  auto h = std::make_shared<HfOpts>();
  CLI::App* hf = exp->add_subcommand("hf", "A Hugging Face model directory (GPT2LMHeadModel / LlamaForCausalLM)");
  hf->footer(
      "Writes config.json, generation_config.json, model.safetensors (sharded with model.safetensors.index.json above\n"
      "--max-shard-size, as transformers does), tokenizer.json and tokenizer_config.json (special tokens, the chat\n"
      "template as Jinja). A model imported with `teddy import hf` gets its own tokenizer_config and generation_config\n"
      "back. The directory is assembled under a temporary name and renamed into place whole. See docs/INTEROP.md.\n"
      "--quantize nf4 writes every block linear as transformers + bitsandbytes save a load_in_4bit model (one NF4\n"
      "tensor set per q/k/v/o, gate/up/down module, config.json's quantization_config; embeddings, norms and lm_head\n"
      "in --dtype): a QLoRA base that transformers loads and `teddy sft --model hf:DIR` trains on as stored (docs/LORA.md).");
  hf->add_option("--checkpoint", h->checkpoint, "Checkpoint directory, or a run directory (its newest intact checkpoint)")
      ->required();
  hf->add_option("--out,-o", h->out, "Directory to create (must not exist, or be empty)")->required();
  hf->add_option("--tokenizer", h->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run directory)");
  hf->add_option("--dtype", h->dtype, "Tensor dtype: f32, bf16 or f16 (16-bit: round to nearest even)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  hf->add_option("--max-shard-size", h->max_shard, "Largest safetensors shard (5GB, 500MB, 2GiB, bytes)");
  hf->add_option("--quantize", h->quantize, "none, or nf4: the block linears in bitsandbytes' 4-bit NF4 serialization")
      ->check(CLI::IsMember({"none", "nf4"}));
  hf->add_flag("--no-double-quant", h->no_double_quant, "With --quantize nf4: float absmax per block (bnb_4bit_use_double_quant false)");
  hf->callback([h, &run] {
    run = [h] {
      HfExportOptions opts;
      opts.quantize_nf4 = h->quantize == "nf4";
      opts.double_quant = !h->no_double_quant;
      opts.tokenizer = h->tokenizer;
      opts.dtype = dtype_from_name(h->dtype);
      opts.max_shard_bytes = static_cast<uint64_t>(plan::parse_bytes("--max-shard-size", h->max_shard, 1e18));
      const HfExportReport r = export_hf(h->checkpoint, h->out, opts);
      for (const std::string& sk : r.skipped) std::printf("# skipped damaged checkpoint %s\n", sk.c_str());
      std::printf("exported %s as %s: %zu tensors, %s in %d safetensors file%s (%s)\n", r.checkpoint.c_str(),
                  r.architecture.c_str(), r.tensors, human_bytes(static_cast<double>(r.tensor_bytes)).c_str(), r.shards,
                  r.shards == 1 ? "" : "s", (h->dtype + (opts.quantize_nf4 ? ", block linears NF4" : "")).c_str());
      std::printf("wrote %s:", r.out_dir.c_str());
      for (const std::string& f : r.files) std::printf(" %s", f.c_str());
      std::printf("\n");
      return 0;
    };
  });

  struct GgufOpts {
    std::string checkpoint, out, tokenizer, type = "f16", name;
  };
  auto g = std::make_shared<GgufOpts>();
  CLI::App* gguf = exp->add_subcommand("gguf", "A GGUF v3 file for llama.cpp and ollama (gpt2, llama and qwen2 architectures)");
  gguf->footer(
      "Tensor names, LLaMA's q/k permutation, hyperparameter and tokenizer.ggml.* keys follow llama.cpp's\n"
      "convert_hf_to_gguf.py; the chat template goes to tokenizer.chat_template. Norms, biases and GPT-2's position\n"
      "embedding stay F32; q8_0 and q4_0 fall back to F16 for rows that are not a multiple of 32. Written to a temporary\n"
      "file and renamed into place. See docs/INTEROP.md.");
  gguf->add_option("--checkpoint", g->checkpoint, "Checkpoint directory, or a run directory (its newest intact checkpoint)")
      ->required();
  gguf->add_option("--out,-o", g->out, "GGUF file to write (replaced atomically)")->required();
  gguf->add_option("--tokenizer", g->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run directory)");
  gguf->add_option("--type", g->type, "Weight type: f32, f16 (default, as the converter), bf16, q8_0 or q4_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}));
  gguf->add_option("--name", g->name, "general.name (default: the run directory's name)");
  gguf->callback([g, &run] {
    run = [g] {
      GgufExportOptions opts;
      opts.tokenizer = g->tokenizer;
      opts.type = gguf_file_type_from_name(g->type);
      opts.name = g->name;
      const GgufExportReport r = export_gguf(g->checkpoint, g->out, opts);
      for (const std::string& sk : r.skipped) std::printf("# skipped damaged checkpoint %s\n", sk.c_str());
      std::string types;
      for (const auto& [t, n] : r.types) types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + t;
      std::printf("exported %s as GGUF (%s): %zu tensors (%s), %zu tokens, %zu merges, pre-tokenizer %s\n",
                  r.checkpoint.c_str(), r.architecture.c_str(), r.tensors, types.c_str(), r.tokens, r.merges,
                  r.pre_tokenizer.c_str());
      std::printf("wrote %s (%s)\n", r.out_file.c_str(), human_bytes(static_cast<double>(r.bytes)).c_str());
      return 0;
    };
  });
}

}  // namespace teddy::cli
