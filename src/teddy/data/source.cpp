#include "teddy/data/source.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

constexpr size_t kMaxSkippedExamples = 5;

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool has_wanted_extension(const fs::path& p, const std::vector<std::string>& exts) {
  if (exts.empty()) return true;
  const std::string name = p.filename().string();
  for (const auto& e : exts)
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return true;
  return false;
}

bool is_hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

std::ifstream open_input(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file + ": cannot open for reading");
  return in;
}

// Strips nlohmann's "[json.exception.parse_error.101] " prefix: the user wants the why.
std::string json_reason(const std::exception& e) {
  std::string s = e.what();
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  return s;
}

void read_whole_file(const std::string& file, SourceReadStats& st, const std::function<void(const Document&)>& fn) {
  std::ifstream in = open_input(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(file + ": read error");
  if (is_blank(text)) return;
  st.documents++;
  st.bytes += text.size();
  fn(Document{text, &file, 1});
}

void read_separated(const std::string& file, const std::string& sep, SourceReadStats& st,
                    const std::function<void(const Document&)>& fn) {
  std::ifstream in = open_input(file);
  std::string line, doc;
  uint64_t lineno = 0, doc_line = 1;
  auto flush = [&]() {
    if (!is_blank(doc)) {
      st.documents++;
      st.bytes += doc.size();
      fn(Document{doc, &file, doc_line});
    }
    doc.clear();
  };
  while (std::getline(in, line)) {
    ++lineno;
    std::string_view l = line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l == sep) {
      flush();
      doc_line = lineno + 1;
      continue;
    }
    if (doc.empty()) doc_line = lineno;
    doc += line;
    doc += '\n';
  }
  if (in.bad()) throw Error(file + ": read error");
  flush();
}

void read_jsonl(const std::string& file, const std::string& field, bool skip_bad, SourceReadStats& st,
                const std::function<void(const Document&)>& fn) {
  std::ifstream in = open_input(file);
  std::string line;
  uint64_t lineno = 0;
  auto bad = [&](const std::string& why) {
    const std::string msg = file + ":" + std::to_string(lineno) + ": " + why;
    if (!skip_bad) throw FormatError(msg + " (pass --skip-bad to count and skip such lines)");
    st.skipped++;
    if (st.skipped_examples.size() < kMaxSkippedExamples) st.skipped_examples.push_back(msg);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (is_blank(line)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      bad("not valid JSON: " + json_reason(e));
      continue;
    }
    if (!j.is_object()) {
      bad("expected a JSON object, got " + std::string(j.type_name()));
      continue;
    }
    const auto it = j.find(field);
    if (it == j.end()) {
      bad("no \"" + field + "\" field (set text_field / --field to the field holding the text)");
      continue;
    }
    if (!it->is_string()) {
      bad("field \"" + field + "\" is a " + std::string(it->type_name()) + ", not a string");
      continue;
    }
    const std::string& text = it->get_ref<const std::string&>();
    if (text.empty()) continue;
    st.documents++;
    st.bytes += text.size();
    fn(Document{text, &file, lineno});
  }
  if (in.bad()) throw Error(file + ": read error");
}

}  // namespace

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string_view source_kind_name(SourceKind k) {
  switch (k) {
    case SourceKind::text: return "text";
    case SourceKind::code: return "code";
    case SourceKind::jsonl: return "jsonl";
  }
  return "?";
}

SourceKind source_kind_from_name(std::string_view name, std::string_view field) {
  if (name == "text" || name == "fortune") return SourceKind::text;
  if (name == "code") return SourceKind::code;
  if (name == "jsonl") return SourceKind::jsonl;
  throw ConfigError(std::string(field) + ": must be one of text, code, jsonl, fortune (got \"" + std::string(name) + "\")");
}

void validate_source_spec(const SourceSpec& s) {
  const std::string where = "source \"" + s.name + "\"";
  if (s.name.empty() || s.name == "." || s.name == ".." ||
      !std::all_of(s.name.begin(), s.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      }))
    throw ConfigError("source name: must be non-empty letters, digits, '_', '-', '.' (got \"" + s.name + "\")");
  if (s.paths.empty()) throw ConfigError(where + ": paths: at least one file or directory is required");
  if (!(s.weight > 0) || !std::isfinite(s.weight))
    throw ConfigError(where + ": weight: must be a finite number > 0 (got " + format_number(s.weight) + ")");
  if (s.kind == SourceKind::jsonl && s.text_field.empty())
    throw ConfigError(where + ": text_field: must name the JSON field holding the text");
  for (const auto& e : s.extensions)
    if (e.empty()) throw ConfigError(where + ": extensions: empty extension");
}

std::vector<std::string> list_source_files(const SourceSpec& spec) {
  std::vector<std::string> out;
  for (const auto& p : spec.paths) {
    std::error_code ec;
    const auto status = fs::status(p, ec);
    if (ec || !fs::exists(status))
      throw Error("source \"" + spec.name + "\": " + p + ": no such file or directory");
    if (fs::is_directory(status)) {
      std::vector<std::string> found;
      auto it = fs::recursive_directory_iterator(p, fs::directory_options::follow_directory_symlink, ec);
      if (ec) throw Error("source \"" + spec.name + "\": " + p + ": cannot list directory: " + ec.message());
      for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) throw Error("source \"" + spec.name + "\": " + p + ": cannot list directory: " + ec.message());
        if (is_hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file() && has_wanted_extension(it->path(), spec.extensions))
          found.push_back(it->path().string());
      }
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      out.push_back(p);  // an explicitly named file is read whatever its extension
    }
  }
  if (out.empty()) {
    std::string exts;
    for (const auto& e : spec.extensions) exts += (exts.empty() ? "" : ",") + e;
    throw Error("source \"" + spec.name + "\": empty source: no files found" +
                (exts.empty() ? std::string() : " with extensions " + exts));
  }
  return out;
}

SourceReadStats read_source(const SourceSpec& spec, bool skip_bad, const std::function<void(const Document&)>& fn) {
  SourceReadStats st;
  for (const auto& file : list_source_files(spec)) {
    st.files++;
    if (spec.kind == SourceKind::jsonl) {
      read_jsonl(file, spec.text_field, skip_bad, st, fn);
    } else if (!spec.separator.empty()) {
      read_separated(file, spec.separator, st, fn);
    } else {
      read_whole_file(file, st, fn);
    }
  }
  if (st.documents == 0)
    throw Error("source \"" + spec.name + "\": empty source: " + std::to_string(st.files) +
                " file(s) but no non-empty documents" +
                (st.skipped ? " (" + std::to_string(st.skipped) + " bad line(s) skipped)" : std::string()));
  return st;
}

}  // namespace teddy
