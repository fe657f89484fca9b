#pragma once
// Shared machinery of teddy's TOML run configs (pretrain, sft): typed reads that name
// the key, section.key=value overrides, and a key table that refuses unknown keys.
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <toml++/toml.h>
#include <vector>

#include "teddy/core/error.h"

namespace teddy::toml_config {

template <class T>
T get_as(const toml::node& n, const std::string& where, const char* want) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (auto v = n.value<std::string>()) return *v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (auto v = n.value<bool>()) return *v;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto v = n.value<double>()) return static_cast<T>(*v);
  } else {
    if (n.is_integer()) return static_cast<T>(*n.value<int64_t>());
  }
  throw ConfigError(where + ": expected " + want);
}

// An array of strings (a single string is taken as an array of one).
inline std::vector<std::string> string_list(const toml::node& n, const std::string& where, const char* want) {
  std::vector<std::string> out;
  if (auto v = n.value<std::string>()) return {*v};
  const toml::array* a = n.as_array();
  if (!a) throw ConfigError(where + ": expected " + want);
  for (const toml::node& e : *a) {
    auto v = e.value<std::string>();
    if (!v) throw ConfigError(where + ": expected " + want);
    out.push_back(*v);
  }
  return out;
}

template <class Config>
using Setter = std::function<void(Config&, const toml::node&, const std::string& where)>;
template <class Config>
using KeyTable = std::map<std::string, Setter<Config>>;

// A setter that reads one typed value into the member `accessor` returns.
template <class T, class Config, class F>
Setter<Config> field(F accessor, const char* want) {
  return [accessor, want](Config& c, const toml::node& n, const std::string& where) {
    accessor(c) = get_as<T>(n, where, want);
  };
}

// Parses `text` (named `source` in messages) and applies "section.key=value" overrides
// (value in TOML syntax; a bare word is a string). Throws ConfigError with file:line:col.
toml::table parse_with_overrides(const std::string& text, const std::string& source,
                                 const std::vector<std::string>& overrides);

// Where a key's value came from, for messages: "override section.key=value" when an
// override set it (the last one of that key wins), else "source: section.key".
std::string key_origin(const std::string& source, const std::string& key, const std::vector<std::string>& overrides);

// Runs the table's setter for every key in `tbl`, except those in `skip` (read
// earlier by the caller); unknown keys and non-table sections are refused. Errors
// name the override that set a key (key_origin), not the config file.
template <class Config>
void apply_keys(Config& c, const toml::table& tbl, const std::string& source, const KeyTable<Config>& keys,
                const std::vector<std::string>& skip = {}, const std::vector<std::string>& overrides = {}) {
  auto known = [&] {
    std::string s;
    for (const auto& [k, _] : keys) s += (s.empty() ? "" : ", ") + k;
    return s;
  };
  for (auto&& [sec_name, sec_node] : tbl) {
    const std::string sec(sec_name.str());
    const toml::table* sec_tbl = sec_node.as_table();
    if (!sec_tbl) throw ConfigError(source + ": \"" + sec + "\" must be a [section]; known keys: " + known());
    for (auto&& [k, node] : *sec_tbl) {
      const std::string full = sec + "." + std::string(k.str());
      auto it = keys.find(full);
      const std::string origin = key_origin(source, full, overrides);
      if (it == keys.end())
        throw ConfigError(origin == source + ": " + full
                              ? source + ": unknown key \"" + full + "\"; known keys: " + known()
                              : origin + ": unknown key; known keys: " + known());
      bool skipped = false;
      for (const auto& s : skip) skipped |= (s == full);
      if (!skipped) it->second(c, node, origin);
    }
  }
}

// The file's text; ConfigError if it cannot be opened or is a directory.
std::string read_config_file(const std::string& path);

}  // namespace teddy::toml_config
