// `teddy eval TASK`: benchmark scores (MMLU, ARC-Challenge, GSM8K, HumanEval,
// perplexity) with lm-evaluation-harness's prompts and metrics (docs/EVAL.md).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/cli/progress.h"
#include "teddy/core/error.h"
#include "teddy/eval/tasks.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/hf_peft.h"
#include "teddy/train/chat_model.h"

namespace teddy::cli {

namespace {

// JSON text of generated strings, which may hold invalid UTF-8 (a token can end
// inside a character): such bytes become U+FFFD instead of an exception.
std::string dump_lossy(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

struct Opts {
  std::string task, checkpoint, model, tokenizer, adapter, data, fewshot, predictions, log_samples, text_field = "text";
  int shots = -1, batch = 16, max_tokens = -1, samples_per_task = 1;
  size_t limit = 0;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 1234;
  double timeout = 10.0;
  size_t memory_mb = 1024;
  bool json = false, cot = false;
};

std::string fmt(const nlohmann::ordered_json& v) {
  if (v.is_number_float()) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v.get<double>());
    return b;
  }
  return v.is_string() ? v.get<std::string>() : dump_lossy(v);
}

void print_table(const EvalResult& r, double seconds) {
  if (r.groups.is_object() && !r.groups.empty()) {
    std::printf("%-40s %6s %8s\n", "subject", "n", "acc");
    for (const auto& [name, g] : r.groups.items())
      std::printf("%-40s %6s %8s\n", name.c_str(), fmt(g["n"]).c_str(), fmt(g["acc"]).c_str());
    std::printf("\n");
  }
  if (r.categories.is_object() && !r.categories.empty()) {
    std::printf("%-40s %6s %8s %8s %10s\n", "category (lm-eval's groups)", "n", "subjects", "acc", "acc_macro");
    for (const auto& [name, g] : r.categories.items())
      std::printf("%-40s %6s %8s %8s %10s\n", name.c_str(), fmt(g["n"]).c_str(), fmt(g["subjects"]).c_str(),
                  fmt(g["acc"]).c_str(), fmt(g["acc_macro"]).c_str());
    std::printf("\n");
  }
  std::printf("%-16s %6s  %-22s %s\n", "task", "n", "metric", "value");
  bool first = true;
  for (const auto& [name, v] : r.metrics.items()) {
    if (name.ends_with("_stderr")) continue;
    std::string val = fmt(v);
    if (r.metrics.contains(name + "_stderr")) val += " ± " + fmt(r.metrics[name + "_stderr"]);
    std::printf("%-16s %6s  %-22s %s\n", first ? r.task.c_str() : "", first ? std::to_string(r.n).c_str() : "", name.c_str(),
                val.c_str());
    first = false;
  }
  for (const auto& [name, v] : r.info.items()) std::printf("  %s: %s\n", name.c_str(), fmt(v).c_str());
  std::printf("  time: %.1f s (%.3f s per sample)\n", seconds, r.n ? seconds / static_cast<double>(r.n) : 0.0);
}

}  // namespace

void register_eval(CLI::App& app, Run& run) {
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("eval", "Benchmark a model: MMLU, ARC-Challenge, GSM8K, HumanEval (sandboxed), perplexity");
  std::string names;
  for (const std::string& n : eval_task_names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("task", o->task, "Task: " + names)->required();
  CLI::Option* ck = sub->add_option("--checkpoint", o->checkpoint, "Checkpoint directory, or a run directory (its newest intact checkpoint)");
  CLI::Option* md = sub->add_option("--model", o->model, "hf:DIR (a Hugging Face model directory), or a checkpoint / run directory");
  ck->excludes(md);
  md->excludes(ck);
  sub->add_option("--adapter", o->adapter,
                  "A LoRA adapter directory in PEFT's format (teddy lora export writes them) on top of --checkpoint / "
                  "--model; scored unmerged, as teddy generate --adapter runs it");
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run)");
  sub->add_option("--data", o->data,
                  "The task's data as published: MMLU's folder (test/ and dev/ CSVs) or JSONL export; ARC, GSM8K, "
                  "HumanEval JSONL (.gz too); perplexity: a text file, a folder of them, JSONL (--text-field) or token shards")
      ->required();
  sub->add_option("--fewshot", o->fewshot, "Few-shot split (default: MMLU's dev/ beside --data; otherwise the first K rows of --data, not scored)");
  sub->add_option("--shots,-k", o->shots, "Few-shot examples (default: MMLU 5, ARC 0, GSM8K 8, HumanEval 0)")->check(CLI::NonNegativeNumber);
  sub->add_option("--limit", o->limit, "Score only the first N samples (MMLU: N per subject, as lm-eval)");
  sub->add_option("--batch-size", o->batch, "Rows per forward pass when scoring log-likelihoods")->check(CLI::PositiveNumber);
  sub->add_option("--max-tokens,-n", o->max_tokens, "Longest generation (default: GSM8K 256, HumanEval 512)")->check(CLI::PositiveNumber);
  sub->add_option("--samples-per-task", o->samples_per_task, "HumanEval: completions per task (pass@k for k <= n)")->check(CLI::PositiveNumber);
  sub->add_option("--temperature,-t", o->temperature, "Generation temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->seed, "Sampling seed (HumanEval sample j uses seed + j)");
  sub->add_option("--timeout", o->timeout, "HumanEval: wall-clock and CPU seconds per program")->check(CLI::PositiveNumber);
  sub->add_option("--memory-mb", o->memory_mb, "HumanEval: address-space limit per program, MiB")->check(CLI::PositiveNumber);
  sub->add_option("--predictions", o->predictions,
                  "Score completions made elsewhere instead of generating: HumanEval samples {task_id, completion}; "
                  "GSM8K {question or idx, completion} (no model needed)");
  sub->add_option("--text-field", o->text_field, "perplexity on JSONL: the field holding the text");
  sub->add_flag("--cot", o->cot, "gsm8k: lm-eval's gsm8k_cot (\"Q: .. A:\" with the fixed 8 chain-of-thought exemplars of Wei et al.); same as task gsm8k_cot");
  sub->add_flag("--json", o->json, "Print one JSON object (task, n, the metrics under lm-eval's names, groups, info)");
  sub->add_option("--log-samples", o->log_samples, "Write one JSON line per sample (prompt, choices, scores, prediction, correct)");
  sub->footer(
      "Prompts and metrics follow lm-evaluation-harness: MMLU acc (per subject, micro and macro), ARC acc and "
      "acc_norm, GSM8K exact_match, HumanEval pass@k, perplexity (token, word, byte; bits_per_byte). HumanEval "
      "programs run in a sandbox: docs/EVAL.md says what it isolates.");
  sub->callback([o, &run] {
    run = [o] {
      bool known = false;
      std::string names;
      for (const std::string& n : eval_task_names()) {
        known = known || n == o->task;
        names += (names.empty() ? "" : ", ") + n;
      }
      if (!known) throw ConfigError("eval: unknown task '" + o->task + "' (known: " + names + ")");
      if (o->cot) {
        if (o->task != "gsm8k" && o->task != "gsm8k_cot")
          throw ConfigError("--cot: only for gsm8k (lm-eval's gsm8k_cot), not " + o->task);
        o->task = "gsm8k_cot";
      }
      // The flags as an [eval.<task>] table would give them: one mapping to options.
      EvalTaskConfig tc;
      tc.task = o->task;
      tc.data = o->data;
      tc.shots = o->shots;
      tc.limit = static_cast<int64_t>(o->limit);
      tc.fewshot = o->fewshot;
      tc.batch_size = o->batch;
      tc.max_tokens = o->max_tokens;
      tc.samples_per_task = o->samples_per_task;
      tc.temperature = o->temperature;
      tc.top_p = o->top_p;
      tc.seed = o->seed;
      tc.timeout = o->timeout;
      tc.memory_mb = static_cast<int64_t>(o->memory_mb);
      tc.text_field = o->text_field;
      EvalOptions eo = eval_options(tc);
      ProgressLine bar(stderr, 20);
      eo.progress = [&bar](size_t done, size_t total) {
        bar.update(static_cast<int64_t>(done), static_cast<int64_t>(total), "");
      };
      const auto t0 = std::chrono::steady_clock::now();
      EvalResult r;
      if (!o->predictions.empty()) {
        if (!o->checkpoint.empty() || !o->model.empty())
          throw ConfigError("--predictions scores completions made elsewhere: give no --checkpoint / --model");
        if (!o->adapter.empty()) throw ConfigError("--adapter: --predictions scores completions made elsewhere (no model)");
        if (o->task == "gsm8k" || o->task == "gsm8k_cot") r = score_gsm8k_predictions(o->data, o->predictions, eo);
        else if (o->task == "humaneval") r = score_humaneval_predictions(o->data, o->predictions, eo);
        else throw ConfigError("--predictions: only for the generation tasks gsm8k and humaneval (got " + o->task + ")");
      } else {
        if (o->checkpoint.empty() && o->model.empty()) throw ConfigError("eval: give --checkpoint or --model (or --predictions)");
        const std::string source = o->checkpoint.empty() ? o->model : o->checkpoint;
        const std::string hf_dir = hf_model_dir(source);
        if (!hf_dir.empty() && !o->tokenizer.empty())
          throw ConfigError("--tokenizer: a Hugging Face model brings its own tokenizer.json");
        ChatModel cm = hf_dir.empty() ? load_chat_model(source, o->tokenizer, false) : load_hf_chat_model(hf_dir, false);
        if (!o->json)
          std::printf("teddy eval %s: %s (%s), data %s\n", o->task.c_str(), cm.checkpoint.c_str(),
                      family_name(cm.model->config().family).data(), o->data.c_str());
        std::fflush(stdout);
        Model& m = *cm.model;
        // The adapter on the base: LoRA turned on with its config and tensors (a
        // mismatched adapter is a FormatError naming its file and tensor).
        if (!o->adapter.empty()) load_peft_adapter(m, o->adapter);
        r = run_eval_task(m, cm.tok, tc, eo);
        r.info["model"] = cm.checkpoint;
        if (!o->adapter.empty()) r.info["adapter"] = o->adapter;
      }
      bar.finish();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!o->log_samples.empty()) {
        std::string lines;
        for (const auto& s : r.samples) lines += dump_lossy(s) + "\n";
        write_file_atomic(o->log_samples, lines);
      }
      if (o->json) {
        nlohmann::ordered_json j;
        j["task"] = r.task;
        j["n"] = r.n;
        for (const auto& [k, v] : r.metrics.items()) j[k] = v;
        if (!r.groups.is_null()) j["groups"] = r.groups;
        if (!r.categories.is_null()) j["categories"] = r.categories;
        j["info"] = r.info;
        j["seconds"] = seconds;
        std::printf("%s\n", dump_lossy(j).c_str());
      } else {
        print_table(r, seconds);
        if (!o->log_samples.empty()) std::printf("  samples: %s\n", o->log_samples.c_str());
      }
      return 0;
    };
  });
}

}  // namespace teddy::cli
