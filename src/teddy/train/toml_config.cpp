#include "teddy/train/toml_config.h"

#include <filesystem>

namespace teddy::toml_config {

namespace {

void apply_override(toml::table& tbl, const std::string& ov) {
  const auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("override \"" + ov + "\": expected section.key=value (e.g. train.steps=100)");
  const std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
  // section.key, or section.table.key for a table inside a section ([eval.mmlu] limit).
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  bool empty_part = false;
  for (const std::string& p : parts) empty_part = empty_part || p.empty();
  if (parts.size() < 2 || parts.size() > 3 || empty_part)
    throw ConfigError("override \"" + ov + "\": key must be section.key (e.g. optim.lr) or section.table.key (e.g. eval.mmlu.limit)");
  toml::table* sec = &tbl;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!(*sec)[parts[i]].as_table()) sec->insert_or_assign(parts[i], toml::table{});
    sec = (*sec)[parts[i]].as_table();
  }
  const std::string& name = parts.back();
  try {
    toml::table parsed = toml::parse("v = " + value);
    if (const toml::node* v = parsed.get("v")) {
      sec->insert_or_assign(name, *v);
      return;
    }
  } catch (const toml::parse_error&) {
    // not a TOML value: a bare word
  }
  sec->insert_or_assign(name, value);
}

}  // namespace

toml::table parse_with_overrides(const std::string& text, const std::string& source,
                                 const std::vector<std::string>& overrides) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw ConfigError(os.str());
  }
  for (const auto& ov : overrides) apply_override(tbl, ov);
  return tbl;
}

std::string key_origin(const std::string& source, const std::string& key, const std::vector<std::string>& overrides) {
  for (auto it = overrides.rbegin(); it != overrides.rend(); ++it) {
    const auto eq = it->find('=');
    if (eq != std::string::npos && it->compare(0, eq, key) == 0 && eq == key.size()) return "override " + *it;
  }
  return source + ": " + key;
}

std::string read_config_file(const std::string& path) {
  // A directory opens as a stream on Linux and reads as empty: the run would start on the defaults.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(path + ": is a directory; --config expects a TOML file");
  std::ifstream f(path);
  if (!f) throw ConfigError(path + ": cannot open config file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace teddy::toml_config
