#pragma once
// Chat templates: how a conversation becomes one token sequence, and which of its
// tokens carry the SFT loss.
//
// A template is a few strings: the conversation is
//   bos, then for each turn: header_prefix + role + header_suffix, content, end_of_turn,
//   with `separator` between turns (not after the last).
// The default, "chatml":
//   <|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n
//   <|im_start|>assistant\nHello.<|im_end|>
// "llama3" is Llama 3's (<|begin_of_text|>, <|start_header_id|>role<|end_header_id|>\n\n,
// <|eot_id|>). A config may define its own (docs/SFT.md).
//
// Or the template is Jinja (`jinja` non-empty): a model's own chat_template ("model",
// kept by teddy import hf) or a file ("jinja:PATH"), rendered by teddy's Jinja engine
// (data/sft/jinja/) with loss masks from its prefix property (jinja_chat.h). Then only
// end_of_turn (derived from the template when empty) and specials (added to the
// tokenizer when missing; usually none: the model's tokenizer has them) are used.
//
// Markers are special tokens (added to the tokenizer when missing); turn contents are
// encoded as plain text, so a user typing "<|im_end|>" cannot forge a marker. Each
// piece is encoded on its own, so a BPE merge never spans a marker and content.
// Loss: the content of assistant turns and their end_of_turn token (so the model
// learns to stop); with train_on_inputs, every token but the first.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <memory>

#include "teddy/data/sft/format.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy::jinja {
class Template;  // data/sft/jinja/template.h: only the files that render include the engine
}

namespace teddy {

struct ChatTemplate {
  std::string name = "chatml";
  std::string bos;                             // once, at the start
  std::string header_prefix = "<|im_start|>";  // then the role name
  std::string header_suffix = "\n";
  std::string end_of_turn = "<|im_end|>";      // after each turn's content: one special token
  std::string separator = "\n";                // between turns
  std::vector<std::string> specials = {"<|im_start|>", "<|im_end|>"};  // tokens the template needs

  // A Jinja template: its text and the values of its bos_token / eos_token variables.
  std::string jinja;
  std::string bos_token, eos_token;
  bool is_jinja() const { return !jinja.empty(); }
  // "model" before it is resolved to the model's own template (train/chat_model.h).
  bool wants_model_template() const { return name == "model" && jinja.empty(); }

  // "chatml" (the default), "llama3", "model" (the model's own Jinja template, resolved
  // when the model is loaded) or "jinja:PATH" (a Jinja file, read now); throws
  // ConfigError listing the names, or naming the file that cannot be read or parsed.
  static ChatTemplate named(std::string_view name);
  static std::vector<std::string> names();  // the built-in ones
  // A Jinja template named `name`; throws ConfigError naming the line and column of a
  // syntax error or unsupported construct.
  static ChatTemplate from_jinja(std::string name, std::string text, std::string bos_token, std::string eos_token);
  // Built-in: end_of_turn is one of specials; specials are distinct and non-empty.
  // Jinja: specials distinct and non-empty, the template parses. Throws ConfigError.
  void validate() const;
  // The parsed Jinja template (parsed once, shared by copies).
  const jinja::Template& compiled() const;

  // The conversation as text (markers spelled out), e.g. for docs and debugging.
  // add_generation_prompt appends the assistant header, as when asking for a reply.
  std::string render_text(std::span<const ChatTurn> turns, bool add_generation_prompt = false) const;

  // JSON for the run directory (chat_template.json), so `teddy generate --chat` renders
  // prompts exactly as training did.
  std::string to_json() const;
  static ChatTemplate from_json(const std::string& text, const std::string& where);  // throws FormatError
  void save(const std::string& path) const;
  static ChatTemplate load(const std::string& path);

 private:
  mutable std::shared_ptr<const jinja::Template> compiled_;  // of `jinja`, when it was parsed
  mutable std::string compiled_text_;
};

// Adds the template's special tokens that `tok` lacks, at the next free ids, in the
// template's order. Returns how many were added.
int add_template_specials(Tokenizer& tok, const ChatTemplate& t);

struct ChatTokens {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss;  // loss[i] != 0: token i is a training target (predicted from i-1)
  size_t loss_count() const;
};

// Throws Error if the tokenizer lacks one of the template's special tokens.
ChatTokens render_chat(const Tokenizer& tok, const ChatTemplate& t, std::span<const ChatTurn> turns,
                       bool train_on_inputs = false);
// The prompt that asks for the next assistant turn: `turns` (ending with a user turn,
// usually), the separator, and the assistant header.
std::vector<int32_t> render_generation_prompt(const Tokenizer& tok, const ChatTemplate& t,
                                              std::span<const ChatTurn> turns);
// The id of t.end_of_turn in `tok` (generation stops there); a Jinja template's
// end_of_turn, when empty, is derived from it (derive_jinja_end_of_turn).
int32_t end_of_turn_id(const Tokenizer& tok, const ChatTemplate& t);

}  // namespace teddy
