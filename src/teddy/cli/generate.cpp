// `teddy generate`: stream a continuation from a checkpoint with the KV cache; or
// answer a JSONL file of prompts in batches, each with its own adapter (--prompts).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/hf_peft.h"
#include "teddy/model/generate.h"
#include "teddy/eval/jsonl.h"
#include "teddy/model/generate_batch.h"
#include "teddy/model/model.h"
#include "teddy/train/chat_model.h"
#include "teddy/checkpoint/checkpoint.h"

namespace fs = std::filesystem;

namespace teddy::cli {

namespace {

// One line of --prompts: {"prompt": "...", "adapter": NAME | "none", "max_tokens": N,
// "system": "..."} (all but prompt optional; system only with --chat; other keys, e.g.
// a task label, are ignored).
struct PromptLine {
  std::string prompt, adapter, system;
  int max_tokens = 0;  // 0: --max-tokens
  size_t line = 0;     // 1-based line in the file (blank lines skipped)
};

// The rows through eval/jsonl.h's reader (blank lines skipped, "FILE:LINE: invalid
// JSON" / "expected a JSON object"), each field checked here.
std::vector<PromptLine> read_prompt_lines(const std::string& path) {
  std::vector<PromptLine> lines;
  for (const JsonlRow& r : read_jsonl(path)) {
    const nlohmann::json& j = r.value;
    PromptLine p;
    p.line = r.line;
    const auto pr = j.find("prompt");
    if (pr == j.end() || !pr->is_string()) row_error(path, r.line, "\"prompt\": expected a string");
    p.prompt = pr->get<std::string>();
    if (const auto a = j.find("adapter"); a != j.end() && !a->is_null()) {
      if (!a->is_string()) row_error(path, r.line, "\"adapter\": expected a string (an --adapter NAME or \"none\")");
      p.adapter = a->get<std::string>();
    }
    if (const auto y = j.find("system"); y != j.end() && !y->is_null()) {
      if (!y->is_string()) row_error(path, r.line, "\"system\": expected a string");
      p.system = y->get<std::string>();
    }
    if (const auto m = j.find("max_tokens"); m != j.end() && !m->is_null()) {
      if (!m->is_number_integer() || m->get<long long>() < 1 || m->get<long long>() > 1000000000)
        row_error(path, r.line, "\"max_tokens\": expected a positive integer");
      p.max_tokens = static_cast<int>(m->get<long long>());
    }
    lines.push_back(std::move(p));
  }
  return lines;
}

}  // namespace

void register_generate(CLI::App& app, Run& run) {
  struct Opts {
    std::string checkpoint, model, tokenizer, prompt, prompts, template_name;
    int max_tokens = 200, batch = 8;
    float temperature = 0.8f, top_p = 1.0f;
    int top_k = 40;
    uint64_t seed = 1234;
    bool stop_at_eot = true;
    bool chat = false;
    std::vector<std::string> adapters;  // NAME=DIR
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a checkpoint (streams tokens, KV cache)");
  CLI::Option* ck = sub->add_option("--checkpoint", o->checkpoint, "Checkpoint directory, or a run directory (its newest intact checkpoint)");
  CLI::Option* md = sub->add_option("--model", o->model,
                                    "hf:DIR: a Hugging Face model directory, imported in memory (docs/INTEROP.md); "
                                    "or a checkpoint / run directory, as --checkpoint");
  ck->excludes(md);
  md->excludes(ck);
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run directory)");
  CLI::Option* one = sub->add_option("--prompt,-p", o->prompt, "Prompt text");
  CLI::Option* many = sub->add_option(
      "--prompts", o->prompts,
      "FILE.jsonl: one request a line, {\"prompt\": \"...\", \"adapter\": NAME or \"none\", \"max_tokens\": N} "
      "(adapter default none, max_tokens default --max-tokens; optional \"system\": a system turn, with --chat; "
      "other keys ignored); answered in batches of --batch "
      "sequences, each with its own adapter on the one loaded base; prints one JSON line a request, in input order: "
      "{\"prompt\", \"adapter\", \"completion\"}");
  one->excludes(many);
  many->excludes(one);
  sub->add_option("--batch", o->batch, "With --prompts: sequences decoded together (default 8)")
      ->check(CLI::PositiveNumber)
      ->needs(many);
  sub->add_option("--max-tokens,-n", o->max_tokens, "Tokens to generate")->check(CLI::PositiveNumber);
  sub->add_option("--temperature,-t", o->temperature, "Sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: off)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->seed, "Sampling seed");
  sub->add_flag("!--no-stop", o->stop_at_eot, "Do not stop at <|endoftext|>");
  sub->add_option("--adapter", o->adapters,
                  "NAME=DIR: a PEFT LoRA adapter (teddy lora export writes them); repeat for several: the prompt is "
                  "answered by the base with each in turn (and NAME=none: without), the base loaded once; with "
                  "--prompts, each line names the adapter it uses");
  sub->add_flag("--chat", o->chat, "Send the prompt as a user turn in the chat template (the run's chat_template.json, else chatml) and stop at the end of the reply");
  sub->add_option("--template", o->template_name,
                  "With --chat: chatml, llama3, model (the model's own Jinja chat_template) or jinja:PATH (a Jinja file); "
                  "default: the run's chat_template.json (an imported model's own), else chatml");
  sub->callback([o, &run] {
    run = [o] {
      if (o->checkpoint.empty() && o->model.empty()) throw ConfigError("generate: give --checkpoint or --model");
      if (o->prompt.empty() && o->prompts.empty()) throw ConfigError("generate: give --prompt or --prompts");
      // Read the requests before loading the model: a bad file fails fast.
      const std::vector<PromptLine> lines = o->prompts.empty() ? std::vector<PromptLine>{} : read_prompt_lines(o->prompts);
      const std::string source = o->checkpoint.empty() ? o->model : o->checkpoint;
      const std::string hf_dir = hf_model_dir(source);
      if (!hf_dir.empty() && !o->tokenizer.empty())
        throw ConfigError("--tokenizer: a Hugging Face model brings its own tokenizer.json");
      if (!o->template_name.empty() && !o->chat) throw ConfigError("--template: only with --chat");
      const ChatTemplate named = o->template_name.empty() ? ChatTemplate{} : ChatTemplate::named(o->template_name);
      const ChatTemplate* tmpl = o->template_name.empty() ? nullptr : &named;
      ChatModel cm = hf_dir.empty() ? load_chat_model(source, o->tokenizer, o->chat, tmpl)
                                    : load_hf_chat_model(hf_dir, o->chat, tmpl);
      for (const std::string& sk : cm.skipped)  // stderr: stdout is the generated text
        std::fprintf(stderr, "# skipped damaged checkpoint %s\n", sk.c_str());
      Model& model = *cm.model;
      const Tokenizer& tok = cm.tok;
      auto encode = [&](const std::string& text, const std::string& system = {}) {
        std::vector<int32_t> ids;
        if (o->chat) {
          std::vector<ChatTurn> turns;
          if (!system.empty()) turns.push_back({ChatRole::system, system});
          turns.push_back({ChatRole::user, text});
          ids = render_generation_prompt(tok, cm.tmpl, std::span<const ChatTurn>(turns));
        } else {
          const std::vector<uint32_t> u = tok.encode(text);
          ids.assign(u.begin(), u.end());
        }
        return ids;
      };
      // Adapters: the first turns LoRA on (its layout), the others are read into their
      // own buffers; switching writes a buffer into the model's adapter parameters.
      std::vector<std::pair<std::string, std::vector<float>>> sets;
      for (const std::string& spec : o->adapters) {
        const size_t eq = spec.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
          throw ConfigError("--adapter: expected NAME=DIR (or NAME=none), got '" + spec + "'");
        const std::string name = spec.substr(0, eq), dir = spec.substr(eq + 1);
        if (dir == "none") {
          sets.push_back({name, {}});
          continue;
        }
        if (!model.lora()) {
          load_peft_adapter(model, dir);
          sets.push_back({name, std::vector<float>(model.params(), model.params() + model.flat_size())});
        } else {
          std::vector<float> v(model.flat_size());
          read_peft_adapter_into(model, dir, v.data());
          sets.push_back({name, std::move(v)});
        }
      }
      SamplingOptions so;
      so.temperature = o->temperature;
      so.top_k = o->top_k;
      so.top_p = o->top_p;
      so.seed = o->seed;
      const uint32_t eot = o->chat ? static_cast<uint32_t>(end_of_turn_id(tok, cm.tmpl)) : tok.eot_id();
      if (o->stop_at_eot) so.stop_tokens.push_back(static_cast<int32_t>(eot));
      if (!o->prompts.empty()) {
        // Each line's adapter by name: an index into the adapter buffers, -1 for none.
        std::map<std::string, int> index{{"none", -1}};
        std::vector<const float*> buffers;
        std::string names = "none";
        for (const auto& [name, values] : sets) {
          if (name == "none" && !values.empty())
            throw ConfigError("--adapter: the name 'none' is kept for the base alone");
          index[name] = values.empty() ? -1 : static_cast<int>(buffers.size());
          if (!values.empty()) buffers.push_back(values.data());
          if (name != "none") names += ", " + name;
        }
        std::vector<GenerationRequest> reqs(lines.size());
        for (size_t i = 0; i < lines.size(); ++i) {
          const std::string at = o->prompts + ":" + std::to_string(lines[i].line);
          const std::string& a = lines[i].adapter.empty() ? std::string("none") : lines[i].adapter;
          const auto it = index.find(a);
          if (it == index.end())
            throw ConfigError(at + ": unknown adapter '" + a + "' (given with --adapter: " + names + ")");
          reqs[i].adapter = it->second;
          reqs[i].max_new_tokens = lines[i].max_tokens > 0 ? lines[i].max_tokens : o->max_tokens;
          if (!lines[i].system.empty() && !o->chat) throw ConfigError(at + ": \"system\" needs --chat");
          reqs[i].prompt = encode(lines[i].prompt, lines[i].system);
          if (reqs[i].prompt.empty()) throw Error(at + ": the prompt encodes to no tokens");
        }
        // JSON lines in input order, each printed once it and those before it are done.
        std::vector<std::vector<int32_t>> done(reqs.size());
        std::vector<bool> ready(reqs.size(), false);
        size_t printed = 0;
        auto flush = [&] {
          for (; printed < reqs.size() && ready[printed]; ++printed) {
            std::vector<uint32_t> ids;
            for (int32_t t : done[printed])
              if (!(o->stop_at_eot && static_cast<uint32_t>(t) == eot)) ids.push_back(static_cast<uint32_t>(t));
            const std::string& a = lines[printed].adapter.empty() ? std::string("none") : lines[printed].adapter;
            const nlohmann::json j = {{"prompt", lines[printed].prompt}, {"adapter", a}, {"completion", tok.decode(ids)}};
            const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            std::fwrite(s.data(), 1, s.size(), stdout);
          }
          std::fflush(stdout);
        };
        generate_batch(model, reqs, buffers, o->batch, so, [&](size_t i, std::span<const int32_t> t) {
          done[i].assign(t.begin(), t.end());
          ready[i] = true;
          flush();
        });
        return 0;
      }
      const std::vector<int32_t> prompt = encode(o->prompt);
      if (prompt.empty()) throw Error("--prompt: the prompt encodes to no tokens");
      auto answer = [&] {
        if (o->chat) std::printf("user: %s\nassistant: ", o->prompt.c_str());
        else std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout);
        std::fflush(stdout);
        generate(model, prompt, o->max_tokens, so, [&](int32_t t) {
          if (static_cast<uint32_t>(t) == eot && o->stop_at_eot) return false;
          const uint32_t u = static_cast<uint32_t>(t);
          const std::string piece = tok.decode(std::span<const uint32_t>(&u, 1));
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return true;
        });
        std::printf("\n");
      };
      if (sets.empty()) answer();
      for (const auto& [name, values] : sets) {
        if (model.lora()) {  // "none" = zero adapters: B = 0 adds exactly nothing
          if (values.empty()) std::fill(model.params(), model.params() + model.flat_size(), 0.0f);
          else std::copy(values.begin(), values.end(), model.params());
        }
        std::printf("[adapter %s]\n", name.c_str());
        answer();
      }
      return 0;
    };
  });
}

}  // namespace teddy::cli
