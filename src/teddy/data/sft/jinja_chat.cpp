#include "teddy/data/sft/jinja_chat.h"

#include <nlohmann/json.hpp>

#include "teddy/core/error.h"
#include "teddy/data/sft/jinja/template.h"

namespace teddy {

std::string render_jinja_text(const ChatTemplate& t, std::span<const ChatTurn> turns, bool add_generation_prompt) {
  nlohmann::json messages = nlohmann::json::array();
  for (const ChatTurn& turn : turns)
    messages.push_back({{"role", std::string(chat_role_name(turn.role))}, {"content", turn.content}});
  const nlohmann::json ctx = {{"messages", messages},     {"add_generation_prompt", add_generation_prompt},
                              {"bos_token", t.bos_token}, {"eos_token", t.eos_token},
                              {"tools", nullptr},         {"documents", nullptr}};
  jinja::RenderOptions opt;
  opt.now = [] { return kChatTemplateClock; };
  return t.compiled().render(ctx, opt);
}

namespace {

void append(ChatTokens& out, const Tokenizer& tok, const std::string& text, bool loss) {
  if (text.empty()) return;
  for (uint32_t id : tok.encode_with_special(text)) {
    out.tokens.push_back(static_cast<int32_t>(id));
    out.loss.push_back(loss ? 1 : 0);
  }
}

bool is_prefix(const std::string& p, const std::string& s) { return s.compare(0, p.size(), p) == 0 && p.size() <= s.size(); }

}  // namespace

ChatTokens render_jinja_chat(const Tokenizer& tok, const ChatTemplate& t, std::span<const ChatTurn> turns,
                             bool train_on_inputs) {
  const std::string full = render_jinja_text(t, turns, false);
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each reply in `full`
  size_t assistant = 0;
  for (size_t i = 0; i < turns.size(); ++i) {
    if (turns[i].role != ChatRole::assistant) continue;
    ++assistant;
    const std::string p = render_jinja_text(t, turns.first(i), true);
    const std::string f = render_jinja_text(t, turns.first(i + 1), false);
    const std::string why = !is_prefix(p, f)      ? "with add_generation_prompt is not a prefix of its rendering with the reply"
                            : !is_prefix(f, full) ? "with the reply is not a prefix of the whole conversation's rendering"
                            : !spans.empty() && p.size() < spans.back().second ? "overlaps the previous reply"
                                                                              : "";
    if (!why.empty())
      throw Error("chat template \"" + t.name + "\": the conversation up to assistant turn " + std::to_string(assistant) +
                  " " + why + ", so the reply's tokens cannot be told apart for the loss mask (docs/SFT.md, Jinja templates)");
    spans.emplace_back(p.size(), f.size());
  }
  ChatTokens out;
  size_t at = 0;
  for (const auto& [b, e] : spans) {
    append(out, tok, full.substr(at, b - at), train_on_inputs);
    append(out, tok, full.substr(b, e - b), true);
    at = e;
  }
  append(out, tok, full.substr(at), train_on_inputs);
  if (!out.loss.empty()) out.loss[0] = 0;  // nothing predicts the first token
  return out;
}

std::string derive_jinja_end_of_turn(const Tokenizer& tok, const ChatTemplate& t) {
  const std::string probe = "teddy probe reply";
  const std::vector<ChatTurn> turns = {{ChatRole::user, "teddy probe"}, {ChatRole::assistant, probe}};
  const std::string f = render_jinja_text(t, turns, false);
  const size_t at = f.rfind(probe);
  if (at != std::string::npos) {
    const std::vector<uint32_t> tail = tok.encode_with_special(f.substr(at + probe.size()));
    if (!tail.empty())
      for (const auto& [text, id] : tok.vocab().specials)
        if (id == tail[0]) return text;
  }
  throw Error("chat template \"" + t.name +
              "\": no special token of the tokenizer follows an assistant reply in its rendering; name the end-of-turn "
              "token (template.end_of_turn)");
}

}  // namespace teddy
