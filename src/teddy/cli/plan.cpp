// `teddy plan`: parameters, FLOPs, tokens, time and memory before a run, and the
// Chinchilla table. The command-line face of plan/.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/plan/plan.h"
#include "teddy/plan/report.h"
#include "teddy/plan/units.h"

namespace teddy::cli {

namespace {

using namespace teddy::plan;

// Every numeric flag is read as text and parsed here, so a bad value gets a message
// that names the flag ("--tokens: must be > 0 (got '-5')") instead of a crash or NaN.
struct PlanArgs {
  std::string model, family;
  std::string layers, d_model, heads, kv_heads, d_ff, vocab, max_seq;
  std::string tokens, seq, micro_batch = "1", precision, zero = "0", dp = "1", tp = "1", pp = "1";
  std::string device = "h100", device_mem, peak_tflops, mfu = "0.4", recompute = "none", lora_rank;
  std::string lora_quantize, lora_targets, lora_dropout;
  std::string flops, params;  // chinchilla
  bool json = false;
};

int parse_int(const char* flag, const std::string& text, double max, bool allow_zero = false) {
  double v = 0;
  if (allow_zero && text == "0") return 0;
  v = parse_count(flag, text, max);
  if (v != std::floor(v)) throw ConfigError(std::string(flag) + ": must be a whole number (got '" + text + "')");
  return static_cast<int>(v);
}

ModelConfig build_model(const PlanArgs& a, std::string& name) {
  const bool sizes = !a.layers.empty() || !a.d_model.empty() || !a.heads.empty() || !a.kv_heads.empty() ||
                     !a.d_ff.empty() || !a.vocab.empty() || !a.max_seq.empty() || !a.family.empty();
  if (a.model.empty() && !sizes)
    throw ConfigError("plan: give --model PRESET or explicit sizes (--family --layers --d-model --heads ...)");
  ModelConfig cfg;
  if (!a.model.empty()) {
    cfg = ModelConfig::preset(a.model);  // unknown names list the known ones
    name = a.model;
  } else {
    cfg.set_family(a.family.empty() ? Family::gpt2 : family_from_name(a.family));
    cfg.d_ff = 0;  // family default unless --d-ff
    name = "custom";
  }
  if (!a.family.empty() && !a.model.empty() && family_from_name(a.family) != cfg.family)
    throw ConfigError("--family: conflicts with the preset's family (" + std::string(family_name(cfg.family)) + ")");
  if (!a.layers.empty()) cfg.n_layer = parse_int("--layers", a.layers, 1024);
  if (!a.d_model.empty()) cfg.d_model = parse_int("--d-model", a.d_model, 65536);
  if (!a.heads.empty()) cfg.n_head = parse_int("--heads", a.heads, 1024);
  if (!a.kv_heads.empty()) cfg.n_kv_head = parse_int("--kv-heads", a.kv_heads, 1024);
  else if (cfg.family == Family::gpt2 || a.model.empty()) cfg.n_kv_head = cfg.n_head;
  if (!a.d_ff.empty()) cfg.d_ff = parse_int("--d-ff", a.d_ff, 1 << 20);
  if (!a.vocab.empty()) {
    cfg.vocab_size = parse_int("--vocab", a.vocab, 1 << 24);
    cfg.padded_vocab_size = ModelConfig::pad_vocab(cfg.vocab_size);
  }
  if (!a.max_seq.empty()) cfg.max_seq_len = parse_int("--max-seq", a.max_seq, 1 << 20);
  if (cfg.d_ff == 0) cfg.set_family(cfg.family);  // fills the family's default d_ff
  if (sizes && !a.model.empty()) name += " (modified)";
  cfg.validate();
  return cfg;
}

PlanInput build_input(const PlanArgs& a) {
  PlanInput in;
  in.cfg = build_model(a, in.model_name);
  TrainSetup& s = in.setup;
  s.seq_len = a.seq.empty() ? in.cfg.max_seq_len : parse_int("--seq", a.seq, 1 << 20);
  if (s.seq_len > in.cfg.max_seq_len)
    throw ConfigError("--seq: must be at most the model's max_seq_len " + std::to_string(in.cfg.max_seq_len) +
                      " (got " + a.seq + "); raise it with --max-seq");
  s.micro_batch = parse_int("--micro-batch", a.micro_batch, 1 << 20);
  const bool lora = !a.lora_rank.empty() && a.lora_rank != "0";
  // LoRA trains in fp32 (the engine's only LoRA precision), so that is its default.
  s.precision = dtype_from_name(a.precision.empty() ? (lora ? "fp32" : "bf16") : a.precision);
  s.zero_stage = parse_int("--zero", a.zero, 3, /*allow_zero=*/true);
  s.dp = parse_int("--dp", a.dp, 1 << 20);
  s.tp = parse_int("--tp", a.tp, 1024);
  s.pp = parse_int("--pp", a.pp, 1024);
  s.recompute = recompute_from_name(a.recompute);
  if (!a.lora_rank.empty()) in.lora.rank = parse_int("--lora-rank", a.lora_rank, 65536, /*allow_zero=*/true);
  if (!lora && (!a.lora_quantize.empty() || !a.lora_targets.empty() || !a.lora_dropout.empty()))
    throw ConfigError("--lora-quantize, --lora-targets, --lora-dropout: need --lora-rank R");
  if (lora) {  // memory as the engine allocates it for this [lora] section
    s.lora.r = in.lora.rank;
    s.lora.alpha = 2.0f * static_cast<float>(s.lora.r);
    if (!a.lora_quantize.empty()) s.lora.quantize = a.lora_quantize;
    if (!a.lora_targets.empty()) {
      std::string t = a.lora_targets;
      for (size_t at = 0; at <= t.size();) {
        const size_t comma = std::min(t.find(',', at), t.size());
        if (comma > at) s.lora.targets.push_back(t.substr(at, comma - at));
        at = comma + 1;
      }
    }
    if (!a.lora_dropout.empty()) {
      char* end = nullptr;
      s.lora.dropout = std::strtof(a.lora_dropout.c_str(), &end);
      if (end == a.lora_dropout.c_str() || *end)
        throw ConfigError("--lora-dropout: must be a number in [0, 1) (got '" + a.lora_dropout + "')");
    }
  }
  in.tokens = a.tokens.empty() ? 0 : parse_count("--tokens", a.tokens, 1e18);
  in.device = device_preset(a.device);
  if (!a.peak_tflops.empty()) in.device.peak_flops = parse_count("--peak-tflops", a.peak_tflops, 1e8) * 1e12;
  in.device_memory = a.device_mem.empty() ? in.device.memory_bytes : parse_bytes("--device-mem", a.device_mem, 1e15);
  in.mfu = parse_count("--mfu", a.mfu, 1.0);
  return in;
}

void print(const std::string& s) { std::fputs((s + "\n").c_str(), stdout); }

int run_plan(const PlanArgs& a, unsigned sections) {
  const Plan p = make_plan(build_input(a));
  print(a.json ? to_json(p, sections).dump(2) : render_text(p, sections));
  return 0;
}

int run_chinchilla(const PlanArgs& a) {
  if (a.flops.empty() && a.params.empty()) {
    const auto rows = chinchilla_table();
    print(a.json ? chinchilla_table_json(rows).dump(2) : render_chinchilla_table(rows));
    return 0;
  }
  if (!a.flops.empty() && !a.params.empty()) throw ConfigError("plan chinchilla: give --flops or --params, not both");
  const double flops = a.flops.empty() ? 0 : parse_count("--flops", a.flops, 1e34);
  const double params = a.params.empty() ? 0 : parse_count("--params", a.params, 1e16);
  const ChinchillaAnswer ans = chinchilla_answer(flops, params);
  print(a.json ? to_json(ans).dump(2) : render_text(ans));
  return 0;
}

}  // namespace

void register_plan(CLI::App& app, Run& run) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* plan = app.add_subcommand(
      "plan", "Plan a training run: parameters, FLOPs, tokens, GPU-hours, memory per device, scaling laws");
  plan->require_subcommand(0, 1);
  plan->add_option("--model", a->model, "Model preset (e.g. gpt2-124M, llama-1B)");
  plan->add_option("--family", a->family, "gpt2 | llama (for explicit sizes)");
  plan->add_option("--layers", a->layers, "Transformer blocks");
  plan->add_option("--d-model", a->d_model, "Model width");
  plan->add_option("--heads", a->heads, "Attention heads");
  plan->add_option("--kv-heads", a->kv_heads, "Key/value heads (GQA; default: --heads)");
  plan->add_option("--d-ff", a->d_ff, "MLP hidden width (default: the family's)");
  plan->add_option("--vocab", a->vocab, "Vocabulary size (padded to a multiple of 64)");
  plan->add_option("--max-seq", a->max_seq, "Maximum sequence length (GPT-2: learned positions)");
  plan->add_option("--tokens", a->tokens, "Training tokens, e.g. 25B (default: Chinchilla-optimal)");
  plan->add_option("--seq", a->seq, "Training sequence length T (default: the model's max)");
  plan->add_option("--micro-batch", a->micro_batch, "Sequences per device per step (default 1)");
  plan->add_option("--precision", a->precision, "fp32 | bf16 | fp16 (16-bit: mixed, fp32 master; default bf16, fp32 with --lora-rank)");
  plan->add_option("--zero", a->zero, "ZeRO stage 0..3 (default 0)");
  plan->add_option("--dp", a->dp, "Data-parallel ranks (default 1)");
  plan->add_option("--tp", a->tp, "Tensor-parallel degree (estimate; default 1)");
  plan->add_option("--pp", a->pp, "Pipeline stages (1F1B estimate; default 1)");
  plan->add_option("--device", a->device, "h100 | h200 | a100 | cpu (default h100)");
  plan->add_option("--device-mem", a->device_mem, "Memory per device, e.g. 80GB or 24GiB (default: the device's)");
  plan->add_option("--peak-tflops", a->peak_tflops, "Peak dense TFLOP/s per device (default: the device's)");
  plan->add_option("--mfu", a->mfu, "Model FLOPs utilisation in (0, 1] (default 0.4)");
  plan->add_option("--recompute", a->recompute, "none | attention | block (default none)");
  plan->add_option("--lora-rank", a->lora_rank,
                   "LoRA rank: trainable adapters over a frozen base (memory as the engine allocates it; precision fp32)");
  plan->add_option("--lora-quantize", a->lora_quantize, "With --lora-rank: the frozen base's storage, none | bf16 | nf4 (QLoRA)");
  plan->add_option("--lora-targets", a->lora_targets, "With --lora-rank: modules to adapt, comma-separated (default all)");
  plan->add_option("--lora-dropout", a->lora_dropout, "With --lora-rank: adapter dropout (its scratch counts; default 0)");
  plan->add_flag("--json", a->json, "JSON output for scripts");

  // Subcommands read the options above too (given before or after their name).
  CLI::App* params = plan->add_subcommand("params", "Parameter counts (total, non-embedding, per block, LoRA)");
  CLI::App* flops = plan->add_subcommand("flops", "FLOPs per token, total for a token budget, time on a device");
  CLI::App* memory = plan->add_subcommand("memory", "Memory per device and the largest micro-batch that fits");
  CLI::App* chin = plan->add_subcommand(
      "chinchilla", "Compute-optimal (N, D): the paper's table, or for --flops C / --params N");
  chin->add_option("--flops", a->flops, "Compute budget in FLOPs, e.g. 1e21");
  chin->add_option("--params", a->params, "Model size, e.g. 7B");
  for (CLI::App* sub : {params, flops, memory, chin}) sub->fallthrough();

  plan->callback([a, params, flops, memory, chin, &run] {
    if (chin->parsed()) {
      run = [a] { return run_chinchilla(*a); };
      return;
    }
    unsigned sections = kSectionAll;
    if (params->parsed()) sections = kSectionModel | kSectionParams;
    if (flops->parsed()) sections = kSectionModel | kSectionFlops | kSectionTraining;
    if (memory->parsed()) sections = kSectionModel | kSectionMemory;
    run = [a, sections] { return run_plan(*a, sections); };
  });
}

}  // namespace teddy::cli
