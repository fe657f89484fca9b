// `teddy generate`: stream a continuation from a checkpoint with the KV cache.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/data/tokenizer.h"
#include "teddy/model/generate.h"
#include "teddy/model/model.h"
#include "teddy/train/checkpoint.h"

namespace fs = std::filesystem;

namespace teddy::cli {

void register_generate(CLI::App& app, Run& run) {
  struct Opts {
    std::string checkpoint, tokenizer, prompt;
    int max_tokens = 200;
    float temperature = 0.8f, top_p = 1.0f;
    int top_k = 40;
    uint64_t seed = 1234;
    bool stop_at_eot = true;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a checkpoint (streams tokens, KV cache)");
  sub->add_option("--checkpoint", o->checkpoint, "Checkpoint directory, or a run directory (its newest intact checkpoint)")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer file (default: tokenizer.json of the checkpoint's run directory)");
  sub->add_option("--prompt,-p", o->prompt, "Prompt text")->required();
  sub->add_option("--max-tokens,-n", o->max_tokens, "Tokens to generate")->check(CLI::PositiveNumber);
  sub->add_option("--temperature,-t", o->temperature, "Sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0: off)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->seed, "Sampling seed");
  sub->add_flag("!--no-stop", o->stop_at_eot, "Do not stop at <|endoftext|>");
  sub->callback([o, &run] {
    run = [o] {
      const std::string dir = resolve_checkpoint_path(o->checkpoint);
      const CheckpointInfo info = inspect_checkpoint(dir);
      Model model(info.model_config);
      load_checkpoint(dir, model, nullptr);
      std::string tok_path = o->tokenizer;
      if (tok_path.empty()) {
        tok_path = (fs::path(dir).parent_path().parent_path() / "tokenizer.json").string();
        if (!fs::exists(tok_path)) throw Error(tok_path + ": no tokenizer next to the checkpoint; pass --tokenizer");
      }
      const Tokenizer tok = Tokenizer::load(tok_path);
      if (tok.vocab_size() > info.model_config.vocab_size)
        throw Error(tok_path + ": tokenizer has " + std::to_string(tok.vocab_size()) + " ids but the model only " +
                    std::to_string(info.model_config.vocab_size));
      const std::vector<uint32_t> ids = tok.encode(o->prompt);
      if (ids.empty()) throw Error("--prompt: the prompt encodes to no tokens");
      std::vector<int32_t> prompt(ids.begin(), ids.end());
      SamplingOptions so;
      so.temperature = o->temperature;
      so.top_k = o->top_k;
      so.top_p = o->top_p;
      so.seed = o->seed;
      if (o->stop_at_eot) so.stop_tokens.push_back(static_cast<int32_t>(tok.eot_id()));
      std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout);
      std::fflush(stdout);
      const uint32_t eot = tok.eot_id();
      generate(model, prompt, o->max_tokens, so, [&](int32_t t) {
        if (static_cast<uint32_t>(t) == eot && o->stop_at_eot) return false;
        const uint32_t u = static_cast<uint32_t>(t);
        const std::string piece = tok.decode(std::span<const uint32_t>(&u, 1));
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::printf("\n");
      return 0;
    };
  });
}

}  // namespace teddy::cli
