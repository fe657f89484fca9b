#include "teddy/io/hf_extras.h"

#include <algorithm>

#include "teddy/core/error.h"
#include "teddy/data/sft/jinja_chat.h"
#include "teddy/io/json_errors.h"

namespace teddy {

namespace {

using json = nlohmann::json;

const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
const char* const kKeptScalars[] = {"add_bos_token", "add_eos_token", "model_max_length", "clean_up_tokenization_spaces",
                                    "tokenizer_class"};

void check_id_field(const json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key) || is_hf_token_ids(j[key])) return;
  throw FormatError(path + ": " + key + ": expected a token id or a list of them (got " + j[key].dump() + ")");
}

bool has_token(const Tokenizer& tok, const std::string& text) {
  const std::vector<std::string>& tokens = tok.vocab().tokens;
  return tok.find_special(text) || std::find(tokens.begin(), tokens.end(), text) != tokens.end();
}

// A special-token entry: "text" or an AddedToken object {"content": "text", ...}.
std::string token_text(const json& v, const std::string& path, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw FormatError(path + ": " + key + ": expected a string or {\"content\": ...} (got " + v.dump() + ")");
}

// A Jinja string literal for `s` (single quotes; \\, \', \n, \r, \t escaped).
std::string jinja_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "'";
}

}  // namespace

std::string HfExtras::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "teddy-hf-extras";
  j["version"] = 1;
  j["source"] = source;
  j["architecture"] = config.architecture;
  j["config"] = {{"bos_token_id", config.bos_token_id},
                 {"eos_token_id", config.eos_token_id},
                 {"pad_token_id", config.pad_token_id},
                 {"torch_dtype", config.torch_dtype}};
  j["tokenizer_config"] = tokenizer_config;
  j["generation_config"] = generation_config;
  return j.dump(2) + "\n";
}

HfExtras HfExtras::from_json(const std::string& text, const std::string& where) {
  HfExtras e;
  const json j = parse_json_or_throw(text, where);
  try {
    if (j.value("format", "") != "teddy-hf-extras") throw FormatError(where + ": format: expected \"teddy-hf-extras\"");
    if (j.value("version", 0) != 1) throw FormatError(where + ": version: expected 1");
    e.source = j.at("source").get<std::string>();
    e.config.architecture = j.at("architecture").get<std::string>();
    const json& c = j.at("config");
    e.config.bos_token_id = c.at("bos_token_id");
    e.config.eos_token_id = c.at("eos_token_id");
    e.config.pad_token_id = c.at("pad_token_id");
    e.config.torch_dtype = c.at("torch_dtype").get<std::string>();
    e.tokenizer_config = j.at("tokenizer_config");
    e.generation_config = j.at("generation_config");
    if (!e.tokenizer_config.is_object()) throw FormatError(where + ": tokenizer_config: expected an object");
    for (const char* k : {"bos_token_id", "eos_token_id", "pad_token_id"}) check_id_field(c, k, where + ": config");
  } catch (const json::exception& ex) {
    throw FormatError(where + ": malformed (" + std::string(ex.what()) + ")");
  }
  return e;
}

std::string HfExtras::chat_template() const {
  if (!tokenizer_config.contains("chat_template")) return "";
  const json& t = tokenizer_config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const json& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return "";
}

json read_tokenizer_config(const json& j, const std::string& path, const Tokenizer& tok,
                           std::vector<std::string>* ignored) {
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object");
  auto fail = [&](const std::string& key, const std::string& what) -> void {
    throw FormatError(path + ": " + key + ": " + what);
  };
  json kept = json::object();
  for (const auto& [key, v] : j.items()) {
    const bool special = std::find(std::begin(kSpecialKeys), std::end(kSpecialKeys), key) != std::end(kSpecialKeys);
    const bool scalar = std::find(std::begin(kKeptScalars), std::end(kKeptScalars), key) != std::end(kKeptScalars);
    if (special) {
      if (v.is_null()) continue;
      const std::string text = token_text(v, path, key);
      if (!has_token(tok, text)) fail(key, "\"" + text + "\" is not a token of tokenizer.json");
      kept[key] = v;
    } else if (key == "additional_special_tokens") {
      if (!v.is_array()) fail(key, "expected a list");
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string k = key + "[" + std::to_string(i) + "]";
        const std::string text = token_text(v[i], path, k);
        if (!has_token(tok, text)) fail(k, "\"" + text + "\" is not a token of tokenizer.json");
      }
      kept[key] = v;
    } else if (key == "chat_template") {
      if (v.is_string()) {
        kept[key] = v;
      } else if (v.is_array()) {
        for (size_t i = 0; i < v.size(); ++i)
          if (!v[i].is_object() || !v[i].contains("name") || !v[i]["name"].is_string() || !v[i].contains("template") ||
              !v[i]["template"].is_string())
            fail(key + "[" + std::to_string(i) + "]", "expected {\"name\": ..., \"template\": ...}");
        kept[key] = v;
      } else if (!v.is_null()) {
        fail(key, "expected a string or a list of {name, template}");
      }
    } else if (scalar) {
      if (key == "add_bos_token" || key == "add_eos_token" || key == "clean_up_tokenization_spaces") {
        if (!v.is_boolean()) fail(key, "expected true or false");
      } else if (key == "model_max_length") {
        if (!v.is_number()) fail(key, "expected a number");
      } else if (!v.is_string() && !v.is_null()) {
        fail(key, "expected a string");
      }
      kept[key] = v;
    } else if (key == "add_prefix_space") {
      if (v.is_boolean() && v.get<bool>()) fail(key, "true is not supported (teddy does not add a prefix space)");
    } else if (key == "do_lower_case") {
      if (v.is_boolean() && v.get<bool>()) fail(key, "true is not supported (teddy does not lowercase)");
    } else if (key != "added_tokens_decoder" && ignored) {
      ignored->push_back(key);  // regenerated from tokenizer.json on export, or informational
    }
  }
  return kept;
}

json read_generation_config(const json& j, const std::string& path) {
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object");
  for (const char* k : {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"})
    check_id_field(j, k, path);
  return j;
}

json make_tokenizer_config(const Tokenizer& tok, const HfExtras& extras, const std::string& chat_template,
                           int max_seq_len) {
  json j;  // keys sorted, as transformers writes them
  json added = json::object();
  std::vector<std::pair<uint32_t, std::string>> specials;
  for (const auto& [text, id] : tok.vocab().specials) specials.emplace_back(id, text);
  std::sort(specials.begin(), specials.end());
  for (const auto& [id, text] : specials)
    added[std::to_string(id)] = {{"content", text}, {"lstrip", false}, {"normalized", false},
                                 {"rstrip", false}, {"single_word", false}, {"special", true}};
  j["added_tokens_decoder"] = added;
  const bool imported = !extras.source.empty();
  if (!imported) {
    j["add_bos_token"] = false;
    j["add_eos_token"] = false;
    if (const auto eot = tok.find_eot()) {
      j["bos_token"] = std::string(tok.token_bytes(*eot));
      j["eos_token"] = std::string(tok.token_bytes(*eot));
    }
    j["clean_up_tokenization_spaces"] = false;
    j["model_max_length"] = max_seq_len;
    j["tokenizer_class"] = "PreTrainedTokenizerFast";
    if (!chat_template.empty()) j["chat_template"] = chat_template;
  }
  for (const auto& [k, v] : extras.tokenizer_config.items()) j[k] = v;
  return j;
}

json make_generation_config(const Tokenizer& tok, const HfExtras& extras, const ChatTemplate* tmpl) {
  if (!extras.source.empty()) return extras.generation_config.is_null() ? json() : extras.generation_config;
  json j = json::object();
  if (const auto id = tok.find_eot()) {
    j["bos_token_id"] = *id;
    j["eos_token_id"] = *id;
    if (tmpl)
      if (const auto end = tok.find_special(tmpl->end_of_turn); end && *end != *id)
        j["eos_token_id"] = json::array({*id, *end});
  }
  return j;
}

HfConfigExtras default_config_extras(const Tokenizer& tok, Family f) {
  HfConfigExtras e;
  e.architecture = hf_architecture(f);
  if (const auto eot = tok.find_eot()) {
    e.bos_token_id = *eot;
    e.eos_token_id = *eot;
  }
  return e;
}

std::string chat_template_jinja(const ChatTemplate& t) {
  std::string s;
  if (!t.bos.empty()) s += "{{ " + jinja_literal(t.bos) + " }}";
  s += "{% for message in messages %}";
  if (!t.separator.empty()) s += "{% if not loop.first %}{{ " + jinja_literal(t.separator) + " }}{% endif %}";
  s += "{{ " + jinja_literal(t.header_prefix) + " + message['role'] + " + jinja_literal(t.header_suffix) +
       " + message['content'] + " + jinja_literal(t.end_of_turn) + " }}";
  s += "{% endfor %}{% if add_generation_prompt %}";
  if (!t.separator.empty()) s += "{% if messages | length > 0 %}{{ " + jinja_literal(t.separator) + " }}{% endif %}";
  s += "{{ " + jinja_literal(t.header_prefix + "assistant" + t.header_suffix) + " }}{% endif %}";
  return s;
}

std::optional<ChatTemplate> builtin_template_for_jinja(const std::string& jinja) {
  for (const std::string& name : ChatTemplate::names()) {
    ChatTemplate t = ChatTemplate::named(name);
    if (chat_template_jinja(t) == jinja) return t;
  }
  return std::nullopt;
}

}  // namespace teddy

namespace teddy {

std::optional<ChatTemplate> model_chat_template(const HfExtras& extras, const Tokenizer& tok, std::string* why) {
  const std::string jinja = extras.chat_template();
  if (jinja.empty()) return std::nullopt;
  if (auto builtin = builtin_template_for_jinja(jinja)) return builtin;
  auto special = [&](const char* key) {
    const json& tc = extras.tokenizer_config;
    return tc.contains(key) && !tc[key].is_null() ? token_text(tc[key], "tokenizer_config.json", key) : std::string();
  };
  ChatTemplate t;
  try {
    t = ChatTemplate::from_jinja("model", jinja, special("bos_token"), special("eos_token"));
  } catch (const ConfigError& e) {  // a template teddy's engine cannot run: the model still imports
    if (why) *why = e.what();
    return std::nullopt;
  }
  try {
    t.end_of_turn = derive_jinja_end_of_turn(tok, t);
  } catch (const Error&) {  // left empty: generate --chat says so, and template.end_of_turn can name it
  }
  return t;
}

}  // namespace teddy
