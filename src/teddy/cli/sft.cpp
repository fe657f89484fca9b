// `teddy sft`: supervised finetuning of a checkpoint on chat / instruction JSONL;
// `teddy sft eval`: exact-match accuracy of greedy replies against references.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak_flops.h"
#include "teddy/cli/commands.h"
#include "teddy/cli/job.h"
#include "teddy/cli/progress.h"
#include "teddy/core/error.h"
#include "teddy/core/stop_signal.h"
#include "teddy/eval/training_eval.h"
#include "teddy/eval/sft_exact_match.h"
#include "teddy/io/hf_import.h"
#include "teddy/train/chat_model.h"

namespace teddy::cli {

void register_sft(CLI::App& app, Run& run) {
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    std::string resume;  // "" (no --resume), "auto" or "require"
    bool skip_bad = false, overwrite = false;
    bool no_memory_check = false;
    std::string gemm;
    int64_t stop_after = 0;
    ProgressOptions progress;
    // eval
    std::string checkpoint, tokenizer, data, format = "auto", template_name, model;
    int max_tokens = 64, show = 5;
    size_t limit = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("sft", "Supervised finetuning: teach a checkpoint to answer (chat / instruction JSONL)");
  sub->add_option("--config,-c", o->config, "TOML run config (see configs/sft/*.toml and docs/SFT.md)");
  sub->add_option("overrides", o->overrides, "Overrides as section.key=value, e.g. train.steps=100 optim.lr=3e-4");
  sub->add_option("--model", o->model,
                  "The model to finetune (overrides model.init): a checkpoint or run directory, or hf:DIR, a Hugging "
                  "Face model directory imported into RUN_DIR/hf_base first (reused when already there); a bitsandbytes 4-bit "
                  "DIR with [lora] quantize = \"nf4\" trains on its NF4 codes as stored (docs/LORA.md)");
  sub->add_flag("--resume{auto}", o->resume,
                "Continue from the newest intact checkpoint in run.dir; with none there yet, start from scratch "
                "(so a requeued job can always pass it). --resume=require fails instead");
  sub->add_flag("--overwrite", o->overwrite, "Start a fresh run in a run.dir that holds checkpoints (deletes them)")->excludes("--resume");
  sub->add_flag("--skip-bad", o->skip_bad, "Count and skip bad JSONL lines instead of stopping at the first");
  sub->add_option("--gemm", o->gemm,
                  "GEMM library of the linears: openblas | onednn | auto (train.gemm; default auto: bf16 products on "
                  "oneDNN under precision bf16 where the CPU has AVX512_BF16/AMX; fp32 on oneDNN where OpenBLAS lacks "
                  "AVX-512 kernels for an AVX-512 CPU; else OpenBLAS)")
      ->check(CLI::IsMember({"openblas", "onednn", "auto"}));
  sub->add_flag("--no-memory-check", o->no_memory_check,
                "Start even when the planned memory exceeds what this process may use (run.memory_check = false)");
  sub->add_option("--stop-after", o->stop_after, "Stop (with a checkpoint) after this many steps, as if interrupted");
  add_progress_options(sub, o->progress);
  sub->footer(
      "Config sections and keys: [model] init tokenizer   [data] train val val_fraction format skip_bad train_on_inputs\n"
      "  [template] name (chatml, llama3, custom, model: the model's own Jinja chat_template, jinja:PATH) bos header_prefix\n"
      "    header_suffix end_of_turn separator specials (a Jinja template: end_of_turn and specials only)\n"
      "  [train] micro_batch seq_len grad_accum steps epochs batching truncation seed threads\n"
      "    precision (fp32|bf16|fp16) loss_scale loss_scale_growth_interval (fp16) gemm (openblas|onednn|auto)\n"
      "  [optim] lr min_lr_ratio warmup_steps weight_decay beta1 beta2 eps grad_clip\n"
      "  [eval] interval batches task_interval, [eval.<task>] (mmlu arc_challenge gsm8k gsm8k_cot humaneval perplexity)\n"
      "    data shots limit fewshot batch_size max_tokens samples_per_task temperature top_p seed timeout memory_mb\n"
      "    text_field: benchmark tasks scored every task_interval steps and at the end (docs/EVAL.md)\n"
      "  [checkpoint] interval keep   [run] dir peak_gflops save_on\n"
      "  [dist] zero (0-3) dp (0: all ranks) timeout_s overlap (used under mpirun / srun: data parallel over all ranks, see docs/DISTRIBUTED.md)\n"
      "  [lora] r alpha dropout targets rslora quantize compute (any key trains LoRA adapters over a frozen base, docs/LORA.md)\n"
      "Stop signals: SIGTERM, SIGINT, SIGUSR1 ([run] save_on) end the run after the current step with a checkpoint\n"
      "  of it and exit code 75 (continue with --resume); a second one ends the process at once. docs/CLUSTER.md");

  CLI::App* ev = sub->add_subcommand("eval", "Exact-match accuracy: greedy replies to each example's prompt vs its reference answer");
  ev->add_option("--checkpoint", o->checkpoint,
                 "Checkpoint directory, a run directory (its newest intact checkpoint), or hf:DIR (a Hugging Face model)")
      ->required();
  ev->add_option("--data", o->data, "JSONL examples; the last assistant turn is the reference")->required();
  ev->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run directory)");
  ev->add_option("--template", o->template_name, "Chat template: chatml, llama3, model (the model's own Jinja chat_template) or jinja:PATH (default: the run's chat_template.json, else chatml)");
  ev->add_option("--format", o->format, "auto, messages, prompt_completion or alpaca");
  ev->add_option("--limit", o->limit, "Evaluate only the first N examples");
  ev->add_option("--max-tokens,-n", o->max_tokens, "Longest reply")->check(CLI::PositiveNumber);
  ev->add_option("--show", o->show, "Print the first N replies")->check(CLI::NonNegativeNumber);
  ev->add_flag("--skip-bad", o->skip_bad, "Count and skip bad JSONL lines");
  ev->footer("A reply counts when it equals the reference, both trimmed of surrounding whitespace (docs/SFT.md).");

  ev->callback([o, &run] {
    run = [o] {
      const ChatTemplate named = o->template_name.empty() ? ChatTemplate{} : ChatTemplate::named(o->template_name);
      const std::string hf_dir = hf_model_dir(o->checkpoint);
      ChatModel cm = hf_dir.empty()
                         ? load_chat_model(o->checkpoint, o->tokenizer, true, o->template_name.empty() ? nullptr : &named)
                         : load_hf_chat_model(hf_dir, true, o->template_name.empty() ? nullptr : &named);
      SftReadStats rs;
      const std::vector<SftExample> ex = read_sft_jsonl(o->data, sft_format_from_name(o->format, "--format"), o->skip_bad, &rs);
      std::printf("checkpoint %s, template %s%s; %zu examples from %s (%llu bad lines skipped)\n", cm.checkpoint.c_str(),
                  cm.tmpl.name.c_str(), cm.added_specials ? " (its tokens added now: the model never saw them)" : "",
                  ex.size(), o->data.c_str(), static_cast<unsigned long long>(rs.skipped));
      std::fflush(stdout);  // before the progress lines on stderr
      ExactMatchOptions opt;
      opt.max_new_tokens = o->max_tokens;
      opt.limit = o->limit;
      ProgressLine bar(stderr, 50);
      const size_t n = o->limit ? std::min(o->limit, ex.size()) : ex.size();
      const ExactMatchResult r = sft_exact_match(*cm.model, cm.tok, cm.tmpl, ex, opt, [&](size_t i, const ExactMatchSample& s) {
        if (static_cast<int>(i) < o->show) {
          bar.message((s.correct ? "[ok]   " : "[miss] ") + s.prompt + "\n       want: " + s.reference +
                      "\n       got:  " + s.reply);
        }
        bar.update(static_cast<int64_t>(i + 1), static_cast<int64_t>(n), "exact match so far");
      });
      bar.finish();
      for (const auto& [task, ct] : r.by_task)
        std::printf("  %-16s %5zu / %-5zu %6.1f%%\n", task.empty() ? "(no task)" : task.c_str(), ct.first, ct.second,
                    ct.second ? 100.0 * ct.first / ct.second : 0.0);
      std::printf("exact match: %zu / %zu = %.1f%%\n", r.correct, r.total, 100 * r.accuracy());
      return 0;
    };
  });

  sub->callback([o, ev, &run] {
    if (ev->parsed()) return;  // `teddy sft eval`: its own callback set the runner
    run = [o] {
      if (o->stop_after < 0)
        throw ConfigError("--stop-after: expected a number of steps >= 1 (got " + std::to_string(o->stop_after) + ")");
      const Resume resume = resume_from_flag(o->resume);  // a bad --resume=X first
      if (o->config.empty()) throw ConfigError("teddy sft: --config is required (or use `teddy sft eval`)");
      std::vector<std::string> ovs = o->overrides;
      if (o->skip_bad) ovs.push_back("data.skip_bad=true");
      if (o->no_memory_check) ovs.push_back("run.memory_check=false");
      if (!o->gemm.empty()) ovs.push_back("train.gemm=" + o->gemm);
      SftConfig cfg = SftConfig::load(o->config, ovs);
      if (!o->model.empty()) cfg.init = o->model;
      JobOptions jo;
      jo.resume = resume;
      jo.overwrite = o->overwrite;
      jo.stop_after = o->stop_after;
      if (!cfg.eval_tasks.empty()) jo.task_evaluator = make_task_evaluator(cfg.eval_tasks, cfg.run_dir);
      // MFU against the physical peak measured at start (bench/peak_flops.h): for bf16
      // products the larger of the bf16 dot-product and FMA loops', else the FMA loop's.
      jo.peak_probe = [bf16 = cfg.gemm_backend().gemm_inputs == DType::bf16](int threads) {
        return peak_gflops_for(measure_peak_flops(threads), bf16);
      };
      // Validates, builds the world (every rank of an mpirun / srun job: data parallel,
      // [dist]), imports an hf:DIR model once, builds the engine and trains.
      TrainJobView view(o->progress, "positions", false);
      install_stop_handlers(cfg.save_on_signals());  // [run] save_on: stop at the next step with a checkpoint
      const TrainResult r = run_sft_job(std::move(cfg), jo, view);
      // Every rank agreed on the stop (Trainer::run), so every rank exits 75.
      return r.stop_signal ? kExitStoppedBySignal : 0;
    };
  });
}

}  // namespace teddy::cli
