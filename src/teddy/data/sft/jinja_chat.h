#pragma once
// A conversation through a Jinja chat template (ChatTemplate::jinja: a model's own
// `chat_template`, or a file), as Hugging Face renders it: the template sees
// `messages` ([{role, content}]), `add_generation_prompt`, `bos_token`, `eos_token`,
// `tools` = none and `documents` = none, and the rendered text is encoded with its
// special tokens recognised anywhere (as transformers' apply_chat_template does, so a
// marker typed in content becomes that marker, unlike the built-in templates).
//
// Loss masks come from the template's prefix property: for assistant turn i,
//   P = render(turns[:i], add_generation_prompt = true), F = render(turns[:i+1])
// P must be a prefix of F and F a prefix of the whole conversation's rendering; the
// reply is F minus P (its content, the end-of-turn marker and whatever the template
// writes after it in that turn). A template without the property (Mistral's puts the
// system prompt into the last user turn) is refused for SFT with the turn named.
// Each masked or unmasked stretch is encoded on its own, so no token spans a boundary.
#include <ctime>
#include <span>
#include <string>
#include <vector>

#include "teddy/data/sft/chat_template.h"

namespace teddy {

// strftime_now's clock for every render: 2024-07-26 12:00 UTC, the date Llama 3.1's
// template falls back to. Templates that print today's date (Llama 3.2) then render the
// same text every day, so an SFT run, its resume and its evaluation do not depend on
// when they ran.
inline constexpr std::time_t kChatTemplateClock = 1721995200;

// The template's text for `turns`. Throws Error naming the template, line and column.
std::string render_jinja_text(const ChatTemplate& t, std::span<const ChatTurn> turns, bool add_generation_prompt);

// Token ids and loss mask (render_chat's contract).
ChatTokens render_jinja_chat(const Tokenizer& tok, const ChatTemplate& t, std::span<const ChatTurn> turns,
                             bool train_on_inputs);

// The special token that ends an assistant turn: the first token after the reply's
// content in the template's rendering of a short conversation (Llama 3 <|eot_id|>,
// ChatML <|im_end|>, Mistral </s>, Gemma <end_of_turn>). Throws Error when that is not a
// special token of `tok` (set template.end_of_turn then).
std::string derive_jinja_end_of_turn(const Tokenizer& tok, const ChatTemplate& t);

}  // namespace teddy
