#pragma once
// What a Hugging Face model directory says beyond teddy's checkpoint and tokenizer:
// config.json's token ids, tokenizer_config.json's special tokens and chat template,
// generation_config.json. `teddy import hf` keeps it in the run directory
// (hf_extras.json) so `teddy export hf` / `export gguf` write it back; a run teddy
// trained itself has none, and export derives the same files from its tokenizer and
// chat_template.json.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/io/hf_model.h"

namespace teddy {

inline constexpr const char* kHfExtrasFile = "hf_extras.json";

struct HfExtras {
  std::string source;                    // the directory imported
  HfConfigExtras config;
  nlohmann::json tokenizer_config = nlohmann::json::object();  // the keys kept (below)
  nlohmann::json generation_config;      // generation_config.json as read; null when absent

  std::string to_json() const;
  // Throws FormatError naming `where` and the field.
  static HfExtras from_json(const std::string& text, const std::string& where);
  // tokenizer_config's chat_template: a string, or (several named templates) the one
  // named "default"; "" when there is none.
  std::string chat_template() const;
};

// tokenizer_config.json, checked against the tokenizer it sits beside. Keeps
// bos/eos/unk/pad_token and additional_special_tokens (strings or AddedToken objects;
// each must be a token of `tok`), chat_template (a string or a list of {name, template},
// kept as text), add_bos_token, add_eos_token, model_max_length,
// clean_up_tokenization_spaces and tokenizer_class. Refuses settings that would change
// how text encodes (add_prefix_space true, do_lower_case true) naming file and key;
// other keys are reported in *ignored.
nlohmann::json read_tokenizer_config(const nlohmann::json& j, const std::string& path, const Tokenizer& tok,
                                     std::vector<std::string>* ignored);
// generation_config.json: an object whose bos/eos/pad_token_id are ids or lists of ids;
// kept whole.
nlohmann::json read_generation_config(const nlohmann::json& j, const std::string& path);

// tokenizer_config.json for export: the kept keys of `extras` over defaults derived
// from `tok` (bos/eos = its <|endoftext|>, model_max_length = max_seq_len,
// PreTrainedTokenizerFast), added_tokens_decoder listing every special token of `tok`,
// and chat_template = `chat_template` when extras has none and it is not empty.
nlohmann::json make_tokenizer_config(const Tokenizer& tok, const HfExtras& extras, const std::string& chat_template,
                                     int max_seq_len);
// generation_config.json for export: extras' if imported, else bos/eos ids from the
// tokenizer (eos also the chat template's end-of-turn token when there is one).
nlohmann::json make_generation_config(const Tokenizer& tok, const HfExtras& extras, const ChatTemplate* tmpl);
// config.json's token ids when extras has none: bos = eos = <|endoftext|> if present.
HfConfigExtras default_config_extras(const Tokenizer& tok, Family f);

// A Jinja chat template (Hugging Face's chat_template) rendering exactly what
// ChatTemplate::render_text renders, add_generation_prompt included. Literal text sits
// in string expressions, so transformers' trim_blocks / lstrip_blocks leave it alone.
std::string chat_template_jinja(const ChatTemplate& t);
// The built-in template (chatml, llama3) whose chat_template_jinja is `jinja`, if any.
std::optional<ChatTemplate> builtin_template_for_jinja(const std::string& jinja);
// The model's own chat template as teddy runs it: the built-in one its Jinja renders,
// else the Jinja itself, named "model", with tokenizer_config's bos_token / eos_token
// and the end-of-turn token derived from it (derive_jinja_end_of_turn; empty when that
// fails). nullopt when there is none, or when teddy's Jinja engine refuses it (*why: the
// parser's message, line and column).
std::optional<ChatTemplate> model_chat_template(const HfExtras& extras, const Tokenizer& tok, std::string* why = nullptr);

}  // namespace teddy
