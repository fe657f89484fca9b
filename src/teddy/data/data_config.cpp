#include "teddy/data/data_config.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <toml++/toml.h>

#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

struct Ctx {
  std::string where;
  fs::path base;
  std::string resolve(const std::string& p) const {
    if (p.empty() || fs::path(p).is_absolute()) return p;
    return (base / p).lexically_normal().string();
  }
  [[noreturn]] void fail(const std::string& field, const std::string& rule) const {
    throw ConfigError(where + ": " + field + ": " + rule);
  }
};

void reject_unknown(const toml::table& t, const std::set<std::string>& known, const std::string& prefix, const Ctx& c) {
  for (const auto& [k, v] : t)
    if (!known.count(std::string(k.str())))
      c.fail(prefix + std::string(k.str()), "unknown key (typo?)");
}

std::string get_string(const toml::table& t, const char* key, const std::string& field, const Ctx& c,
                       const std::string& def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (!n->is_string()) c.fail(field, "must be a string");
  return std::string(*n->value<std::string>());
}

double get_number(const toml::table& t, const char* key, const std::string& field, const Ctx& c, double def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (!n->is_number()) c.fail(field, "must be a number");
  return *n->value<double>();
}

int64_t get_int(const toml::table& t, const char* key, const std::string& field, const Ctx& c, int64_t def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (!n->is_integer()) c.fail(field, "must be an integer");
  return *n->value<int64_t>();
}

bool get_bool(const toml::table& t, const char* key, const std::string& field, const Ctx& c, bool def) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (!n->is_boolean()) c.fail(field, "must be true or false");
  return *n->value<bool>();
}

// A string or an array of strings.
std::vector<std::string> get_strings(const toml::table& t, const char* key, const std::string& field, const Ctx& c) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  if (n->is_string()) return {std::string(*n->value<std::string>())};
  const toml::array* a = n->as_array();
  if (!a) c.fail(field, "must be a string or an array of strings");
  for (const auto& e : *a) {
    if (!e.is_string()) c.fail(field, "must be an array of strings");
    out.emplace_back(*e.value<std::string>());
  }
  return out;
}

SourceSpec parse_source(const toml::table& t, size_t index, const Ctx& c) {
  const std::string f = "source[" + std::to_string(index) + "].";
  reject_unknown(t, {"name", "kind", "paths", "path", "dir", "extensions", "text_field", "separator", "weight"}, f, c);
  SourceSpec s;
  s.name = get_string(t, "name", f + "name", c, "");
  if (s.name.empty()) c.fail(f + "name", "is required");
  const std::string kind = get_string(t, "kind", f + "kind", c, "text");
  try {
    s.kind = source_kind_from_name(kind, f + "kind");
  } catch (const ConfigError& e) {
    throw ConfigError(c.where + ": " + e.what());
  }
  if (kind == "fortune") s.separator = "%";
  for (const char* key : {"paths", "path", "dir"})
    for (auto& p : get_strings(t, key, f + key, c)) s.paths.push_back(c.resolve(p));
  s.extensions = get_strings(t, "extensions", f + "extensions", c);
  for (auto& e : s.extensions)
    if (!e.empty() && e[0] != '.') e = "." + e;  // "py" and ".py" both work
  s.text_field = get_string(t, "text_field", f + "text_field", c, "text");
  s.separator = get_string(t, "separator", f + "separator", c, s.separator);
  s.weight = get_number(t, "weight", f + "weight", c, 1.0);
  try {
    validate_source_spec(s);
  } catch (const ConfigError& e) {
    throw ConfigError(c.where + ": " + e.what());
  }
  return s;
}

}  // namespace

PrepareConfig parse_prepare_config(const std::string& text, const std::string& base_dir, const std::string& where) {
  toml::table root;
  try {
    root = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(where + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                      std::string(e.description()));
  }
  Ctx c{where, fs::path(base_dir)};
  reject_unknown(root, {"out", "val_fraction", "split_seed", "shard_tokens", "skip_bad", "threads", "tokenizer", "source"},
                 "", c);
  PrepareConfig cfg;
  cfg.out_dir = c.resolve(get_string(root, "out", "out", c, ""));
  cfg.val_fraction = get_number(root, "val_fraction", "val_fraction", c, cfg.val_fraction);
  const int64_t seed = get_int(root, "split_seed", "split_seed", c, 0);
  if (seed < 0) c.fail("split_seed", "must be >= 0");
  cfg.split_seed = static_cast<uint64_t>(seed);
  const int64_t shard = get_int(root, "shard_tokens", "shard_tokens", c, static_cast<int64_t>(cfg.shard_tokens));
  if (shard <= 0) c.fail("shard_tokens", "must be > 0 (got " + std::to_string(shard) + ")");
  cfg.shard_tokens = static_cast<uint64_t>(shard);
  cfg.skip_bad = get_bool(root, "skip_bad", "skip_bad", c, false);
  const int64_t threads = get_int(root, "threads", "threads", c, 0);
  if (threads < 0) c.fail("threads", "must be >= 0");
  cfg.threads = static_cast<int>(threads);

  if (const toml::node* tn = root.get("tokenizer")) {
    if (const toml::table* tt = tn->as_table()) {
      reject_unknown(*tt, {"path"}, "tokenizer.", c);
      const std::string p = get_string(*tt, "path", "tokenizer.path", c, "bytes");
      cfg.tokenizer = p == "bytes" ? p : c.resolve(p);
    } else if (tn->is_string()) {
      const std::string p(*tn->value<std::string>());
      cfg.tokenizer = p == "bytes" ? p : c.resolve(p);
    } else {
      c.fail("tokenizer", "must be a table with path = \"...\" or a string");
    }
  }

  const toml::node* sn = root.get("source");
  if (!sn) c.fail("source", "at least one [[source]] table is required");
  const toml::array* arr = sn->as_array();
  if (!arr) c.fail("source", "must be an array of tables ([[source]])");
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* t = (*arr)[i].as_table();
    if (!t) c.fail("source[" + std::to_string(i) + "]", "must be a table");
    cfg.sources.push_back(parse_source(*t, i, c));
  }
  // `out` may come from the command line instead, so only the rest is checked here.
  if (!(cfg.val_fraction >= 0 && cfg.val_fraction < 1))
    c.fail("val_fraction", "must be in [0, 1) (got " + format_number(cfg.val_fraction) + ")");
  std::set<std::string> names;
  for (const auto& s : cfg.sources)
    if (!names.insert(s.name).second) c.fail("source \"" + s.name + "\"", "name used twice");
  return cfg;
}

PrepareConfig load_prepare_config(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw ConfigError(path + ": no such config file");
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) throw ConfigError(path + ": cannot read");
  const fs::path base = fs::absolute(path).parent_path();
  return parse_prepare_config(text, base.string(), path);
}

}  // namespace teddy
