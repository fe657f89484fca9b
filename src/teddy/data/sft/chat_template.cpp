#include "teddy/data/sft/chat_template.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/data/sft/jinja/template.h"
#include "teddy/data/sft/jinja_chat.h"
#include "teddy/io/atomic_file.h"

namespace teddy {

ChatTemplate ChatTemplate::named(std::string_view name) {
  ChatTemplate t;  // chatml
  if (name == "chatml") return t;
  if (name == "llama3") {
    t.name = "llama3";
    t.bos = "<|begin_of_text|>";
    t.header_prefix = "<|start_header_id|>";
    t.header_suffix = "<|end_header_id|>\n\n";
    t.end_of_turn = "<|eot_id|>";
    t.separator = "";
    t.specials = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    return t;
  }
  if (name == "model") {  // resolved when the model is loaded: its run's chat_template.json
    t.name = "model";
    t.specials.clear();
    t.end_of_turn.clear();
    return t;
  }
  if (name.rfind("jinja:", 0) == 0) {
    const std::string path(name.substr(6));
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ConfigError("template.name: cannot read the Jinja chat template " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (ss.str().empty()) throw ConfigError("template.name: " + path + " is empty");
    return from_jinja(std::string(name), ss.str(), "", "");
  }
  throw ConfigError("template.name: unknown chat template \"" + std::string(name) +
                    "\" (known: chatml, llama3, model (the model's own Jinja template), jinja:PATH (a Jinja file); or "
                    "set name = \"custom\" and the template's strings)");
}

ChatTemplate ChatTemplate::from_jinja(std::string name, std::string text, std::string bos_token, std::string eos_token) {
  ChatTemplate t;
  t.name = std::move(name);
  t.bos.clear();
  t.header_prefix.clear();
  t.header_suffix.clear();
  t.end_of_turn.clear();
  t.separator.clear();
  t.specials.clear();
  t.jinja = std::move(text);
  t.bos_token = std::move(bos_token);
  t.eos_token = std::move(eos_token);
  t.validate();
  return t;
}

const jinja::Template& ChatTemplate::compiled() const {
  if (!compiled_ || compiled_text_ != jinja) {
    try {
      compiled_ = std::make_shared<const jinja::Template>(jinja, "chat template \"" + name + "\"");
    } catch (const jinja::JinjaError& e) {
      throw ConfigError(e.what());
    }
    compiled_text_ = jinja;
  }
  return *compiled_;
}

std::vector<std::string> ChatTemplate::names() { return {"chatml", "llama3"}; }

void ChatTemplate::validate() const {
  if (is_jinja() || wants_model_template()) {
    for (size_t i = 0; i < specials.size(); ++i) {
      if (specials[i].empty()) throw ConfigError("template.specials: empty special token");
      for (size_t k = 0; k < i; ++k)
        if (specials[k] == specials[i]) throw ConfigError("template.specials: \"" + specials[i] + "\" listed twice");
    }
    if (is_jinja()) compiled();  // a syntax error now, not at the first example
    return;
  }
  if (specials.empty()) throw ConfigError("template.specials: a template needs at least its end-of-turn token");
  for (size_t i = 0; i < specials.size(); ++i) {
    if (specials[i].empty()) throw ConfigError("template.specials: empty special token");
    for (size_t k = 0; k < i; ++k)
      if (specials[k] == specials[i]) throw ConfigError("template.specials: \"" + specials[i] + "\" listed twice");
  }
  if (std::find(specials.begin(), specials.end(), end_of_turn) == specials.end())
    throw ConfigError("template.end_of_turn: must be one of template.specials (got \"" + end_of_turn + "\")");
}

std::string ChatTemplate::render_text(std::span<const ChatTurn> turns, bool add_generation_prompt) const {
  if (is_jinja()) return render_jinja_text(*this, turns, add_generation_prompt);
  std::string s = bos;
  for (size_t i = 0; i < turns.size(); ++i) {
    if (i) s += separator;
    s += header_prefix + std::string(chat_role_name(turns[i].role)) + header_suffix + turns[i].content + end_of_turn;
  }
  if (add_generation_prompt) {
    if (!turns.empty()) s += separator;
    s += header_prefix + "assistant" + header_suffix;
  }
  return s;
}

std::string ChatTemplate::to_json() const {
  nlohmann::ordered_json j{{"format", "teddy-chat-template"}, {"name", name},           {"bos", bos},
                           {"header_prefix", header_prefix},  {"header_suffix", header_suffix},
                           {"end_of_turn", end_of_turn},      {"separator", separator}, {"specials", specials}};
  if (is_jinja()) {  // the template's text travels with the run
    j["jinja"] = jinja;
    j["bos_token"] = bos_token;
    j["eos_token"] = eos_token;
  }
  return j.dump(2) + "\n";
}

ChatTemplate ChatTemplate::from_json(const std::string& text, const std::string& where) {
  ChatTemplate t;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("format", "") != "teddy-chat-template") throw FormatError(where + ": not a teddy chat template (format field)");
    t.name = j.at("name").get<std::string>();
    t.bos = j.at("bos").get<std::string>();
    t.header_prefix = j.at("header_prefix").get<std::string>();
    t.header_suffix = j.at("header_suffix").get<std::string>();
    t.end_of_turn = j.at("end_of_turn").get<std::string>();
    t.separator = j.at("separator").get<std::string>();
    t.specials = j.at("specials").get<std::vector<std::string>>();
    t.jinja = j.value("jinja", "");
    t.bos_token = j.value("bos_token", "");
    t.eos_token = j.value("eos_token", "");
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": malformed chat template (" + e.what() + ")");
  }
  try {
    t.validate();
  } catch (const ConfigError& e) {
    throw FormatError(where + ": " + e.what());
  }
  return t;
}

void ChatTemplate::save(const std::string& path) const { write_file_atomic(path, to_json()); }

ChatTemplate ChatTemplate::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open chat template");
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

int add_template_specials(Tokenizer& tok, const ChatTemplate& t) {
  t.validate();
  int added = 0;
  for (const std::string& s : t.specials) {
    const int before = tok.vocab_size();
    tok.add_special(s);
    added += tok.vocab_size() > before;
  }
  return added;
}

size_t ChatTokens::loss_count() const {
  return static_cast<size_t>(std::count_if(loss.begin(), loss.end(), [](uint8_t v) { return v != 0; }));
}

int32_t end_of_turn_id(const Tokenizer& tok, const ChatTemplate& t) {
  const std::string eot = t.is_jinja() && t.end_of_turn.empty() ? derive_jinja_end_of_turn(tok, t) : t.end_of_turn;
  try {
    return static_cast<int32_t>(tok.special_id(eot));
  } catch (const Error&) {
    throw Error("chat template \"" + t.name + "\": the tokenizer has no special token \"" + eot +
                "\" (add the template's specials first)");
  }
}

namespace {

// Appends the encoding of `text` (markers as special tokens when `markers`) with `loss`.
void append(ChatTokens& out, const Tokenizer& tok, const std::string& text, bool markers, bool loss) {
  if (text.empty()) return;
  const std::vector<uint32_t> ids = markers ? tok.encode_with_special(text) : tok.encode(text);
  for (uint32_t id : ids) {
    out.tokens.push_back(static_cast<int32_t>(id));
    out.loss.push_back(loss ? 1 : 0);
  }
}

void check_specials(const Tokenizer& tok, const ChatTemplate& t) {
  for (const std::string& s : t.specials) {
    try {
      tok.special_id(s);
    } catch (const Error&) {
      throw Error("chat template \"" + t.name + "\": the tokenizer has no special token \"" + s +
                  "\" (add the template's specials first)");
    }
  }
}

}  // namespace

ChatTokens render_chat(const Tokenizer& tok, const ChatTemplate& t, std::span<const ChatTurn> turns,
                       bool train_on_inputs) {
  check_specials(tok, t);
  if (t.is_jinja()) return render_jinja_chat(tok, t, turns, train_on_inputs);
  if (t.wants_model_template()) throw Error("chat template \"model\": not resolved to the model's template");
  ChatTokens out;
  append(out, tok, t.bos, true, train_on_inputs);
  const int32_t eot = end_of_turn_id(tok, t);
  for (size_t i = 0; i < turns.size(); ++i) {
    const bool learn = train_on_inputs || turns[i].role == ChatRole::assistant;
    if (i) append(out, tok, t.separator, true, train_on_inputs);
    append(out, tok, t.header_prefix + std::string(chat_role_name(turns[i].role)) + t.header_suffix, true,
           train_on_inputs);
    append(out, tok, turns[i].content, false, learn);
    out.tokens.push_back(eot);  // the turn's end: learnt with an assistant turn, so the model stops
    out.loss.push_back(learn ? 1 : 0);
  }
  if (!out.loss.empty()) out.loss[0] = 0;  // nothing predicts the first token
  return out;
}

std::vector<int32_t> render_generation_prompt(const Tokenizer& tok, const ChatTemplate& t,
                                              std::span<const ChatTurn> turns) {
  if (t.is_jinja()) {
    check_specials(tok, t);
    const std::vector<uint32_t> ids = tok.encode_with_special(render_jinja_text(t, turns, true));
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  ChatTokens out = render_chat(tok, t, turns, false);
  if (!turns.empty()) append(out, tok, t.separator, true, false);
  append(out, tok, t.header_prefix + "assistant" + t.header_suffix, true, false);
  return out.tokens;
}

}  // namespace teddy
