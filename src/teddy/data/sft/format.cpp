#include "teddy/data/sft/format.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "teddy/core/error.h"

namespace teddy {

std::string_view sft_format_name(SftFormat f) {
  switch (f) {
    case SftFormat::auto_detect: return "auto";
    case SftFormat::messages: return "messages";
    case SftFormat::prompt_completion: return "prompt_completion";
    case SftFormat::alpaca: return "alpaca";
  }
  return "?";
}

SftFormat sft_format_from_name(std::string_view name, std::string_view field) {
  for (SftFormat f : {SftFormat::auto_detect, SftFormat::messages, SftFormat::prompt_completion, SftFormat::alpaca})
    if (name == sft_format_name(f)) return f;
  throw ConfigError(std::string(field) + ": must be one of auto, messages, prompt_completion, alpaca (got \"" +
                    std::string(name) + "\")");
}

std::string_view chat_role_name(ChatRole r) {
  switch (r) {
    case ChatRole::system: return "system";
    case ChatRole::user: return "user";
    case ChatRole::assistant: return "assistant";
  }
  return "?";
}

namespace {

// A string field of `j`; the message says which field and what it was instead.
const std::string& string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw FormatError(where + ": missing field \"" + key + "\"");
  if (!it->is_string()) throw FormatError(where + ": field \"" + key + "\" must be a string (got " + it->type_name() + ")");
  return it->get_ref<const std::string&>();
}

SftFormat detect(const nlohmann::json& j, const std::string& where) {
  if (j.contains("messages")) return SftFormat::messages;
  if (j.contains("prompt") || j.contains("completion")) return SftFormat::prompt_completion;
  if (j.contains("instruction") || j.contains("output")) return SftFormat::alpaca;
  throw FormatError(where + ": cannot tell the format: expected \"messages\", \"prompt\"+\"completion\" or "
                    "\"instruction\"+\"output\"");
}

ChatRole role_from(const std::string& s, const std::string& where) {
  if (s == "system") return ChatRole::system;
  if (s == "user") return ChatRole::user;
  if (s == "assistant") return ChatRole::assistant;
  throw FormatError(where + ": unknown role \"" + s + "\" (expected system, user or assistant)");
}

}  // namespace

SftExample parse_sft_line(std::string_view text, SftFormat format, const std::string& file, uint64_t line) {
  const std::string where = file + ":" + std::to_string(line);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string why = e.what();
    if (const size_t p = why.find("parse error"); p != std::string::npos) why = why.substr(p);
    throw FormatError(where + ": not JSON: " + why);
  }
  if (!j.is_object()) throw FormatError(where + ": expected a JSON object (got " + std::string(j.type_name()) + ")");

  SftExample ex;
  ex.file = file;
  ex.line = line;
  for (const char* k : {"task", "category"})
    if (auto it = j.find(k); it != j.end() && it->is_string() && ex.task.empty()) ex.task = it->get<std::string>();

  const SftFormat f = format == SftFormat::auto_detect ? detect(j, where) : format;
  ex.format = f;
  switch (f) {
    case SftFormat::messages: {
      const auto it = j.find("messages");
      if (it == j.end()) throw FormatError(where + ": missing field \"messages\"");
      if (!it->is_array() || it->empty()) throw FormatError(where + ": \"messages\" must be a non-empty array");
      for (size_t i = 0; i < it->size(); ++i) {
        const nlohmann::json& m = (*it)[i];
        const std::string mw = where + ": messages[" + std::to_string(i) + "]";
        if (!m.is_object()) throw FormatError(mw + ": expected an object with \"role\" and \"content\"");
        ChatTurn t;
        t.role = role_from(string_field(m, "role", mw), mw);
        t.content = string_field(m, "content", mw);
        if (t.role == ChatRole::system && i != 0) throw FormatError(mw + ": a system turn may only come first");
        ex.turns.push_back(std::move(t));
      }
      break;
    }
    case SftFormat::prompt_completion:
      ex.turns.push_back({ChatRole::user, string_field(j, "prompt", where)});
      ex.turns.push_back({ChatRole::assistant, string_field(j, "completion", where)});
      break;
    case SftFormat::alpaca: {
      std::string user = string_field(j, "instruction", where);
      if (auto it = j.find("input"); it != j.end()) {
        if (!it->is_string()) throw FormatError(where + ": field \"input\" must be a string (got " + it->type_name() + ")");
        if (!it->get_ref<const std::string&>().empty()) user += "\n\n" + it->get<std::string>();
      }
      ex.turns.push_back({ChatRole::user, std::move(user)});
      ex.turns.push_back({ChatRole::assistant, string_field(j, "output", where)});
      break;
    }
    case SftFormat::auto_detect: break;  // resolved above
  }
  bool any_assistant = false;
  for (size_t i = 0; i < ex.turns.size(); ++i) {
    if (ex.turns[i].role != ChatRole::assistant) continue;
    any_assistant = true;
    if (ex.turns[i].content.empty())
      throw FormatError(where + (f == SftFormat::messages ? ": messages[" + std::to_string(i) + "]" : std::string()) +
                        ": empty assistant turn (nothing to learn from)");
  }
  if (!any_assistant) throw FormatError(where + ": no assistant turn (nothing to learn from)");
  return ex;
}

std::vector<SftExample> read_sft_jsonl(const std::string& path, SftFormat format, bool skip_bad, SftReadStats* stats) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open SFT data file");
  SftReadStats local;
  SftReadStats& st = stats ? *stats : local;
  std::vector<SftExample> out;
  std::string text;
  uint64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    ++st.lines;
    try {
      SftExample ex = parse_sft_line(text, format, path, line);
      ++st.by_format[static_cast<int>(ex.format)];
      out.push_back(std::move(ex));
    } catch (const FormatError& e) {
      if (!skip_bad) throw FormatError(std::string(e.what()) + " (pass --skip-bad to count and skip such lines)");
      ++st.skipped;
      if (st.skipped_examples.size() < 5) st.skipped_examples.push_back(e.what());
    }
  }
  st.examples += out.size();
  if (out.empty()) throw Error(path + ": no SFT examples" + (st.skipped ? " (every line was bad)" : ""));
  return out;
}

}  // namespace teddy
