// `teddy generate`: stream a continuation from a checkpoint with the KV cache.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/hf_peft.h"
#include "teddy/model/generate.h"
#include "teddy/model/model.h"
#include "teddy/train/chat_model.h"
#include "teddy/checkpoint/checkpoint.h"

namespace fs = std::filesystem;

namespace teddy::cli {

void register_generate(CLI::App& app, Run& run) {
  struct Opts {
    std::string checkpoint, model, tokenizer, prompt, template_name;
    int max_tokens = 200;
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
  sub->add_option("--prompt,-p", o->prompt, "Prompt text")->required();
  sub->add_option("--max-tokens,-n", o->max_tokens, "Tokens to generate")->check(CLI::PositiveNumber);
  sub->add_option("--temperature,-t", o->temperature, "Sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: off)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->seed, "Sampling seed");
  sub->add_flag("!--no-stop", o->stop_at_eot, "Do not stop at <|endoftext|>");
  sub->add_option("--adapter", o->adapters,
                  "NAME=DIR: a PEFT LoRA adapter (teddy lora export writes them); repeat for several: the prompt is "
                  "answered by the base with each in turn (and NAME=none: without), the base loaded once");
  sub->add_flag("--chat", o->chat, "Send the prompt as a user turn in the chat template (the run's chat_template.json, else chatml) and stop at the end of the reply");
  sub->add_option("--template", o->template_name,
                  "With --chat: chatml, llama3, model (the model's own Jinja chat_template) or jinja:PATH (a Jinja file); "
                  "default: the run's chat_template.json (an imported model's own), else chatml");
  sub->callback([o, &run] {
    run = [o] {
      if (o->checkpoint.empty() && o->model.empty()) throw ConfigError("generate: give --checkpoint or --model");
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
      std::vector<int32_t> prompt;
      if (o->chat) {
        const ChatTurn user{ChatRole::user, o->prompt};
        prompt = render_generation_prompt(tok, cm.tmpl, std::span<const ChatTurn>(&user, 1));
      } else {
        const std::vector<uint32_t> ids = tok.encode(o->prompt);
        prompt.assign(ids.begin(), ids.end());
      }
      if (prompt.empty()) throw Error("--prompt: the prompt encodes to no tokens");
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
