#include "teddy/data/manifest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"

namespace teddy {

using nlohmann::json;

namespace {

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t parse_hex64(const std::string& s, const std::string& where) {
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    throw FormatError(where + ": checksum must be 16 hex digits (got \"" + s + "\")");
  return std::stoull(s, nullptr, 16);
}

json shards_json(const std::vector<ShardInfo>& shards) {
  json a = json::array();
  for (const auto& s : shards) a.push_back({{"path", s.path}, {"tokens", s.tokens}, {"checksum", hex64(s.checksum)}});
  return a;
}

// Field access with the manifest file and JSON path in every error.
template <class T> T field(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw FormatError(where + ": missing field \"" + key + "\"");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw FormatError(where + ": field \"" + key + "\" has the wrong type (" + it->type_name() + ")");
  }
}

std::vector<ShardInfo> shards_from(const json& j, const char* key, const std::string& where) {
  std::vector<ShardInfo> out;
  const auto arr = field<json>(j, key, where);
  if (!arr.is_array()) throw FormatError(where + ": \"" + key + "\" must be an array");
  for (size_t i = 0; i < arr.size(); ++i) {
    const std::string w = where + "." + key + "[" + std::to_string(i) + "]";
    ShardInfo s;
    s.path = field<std::string>(arr[i], "path", w);
    s.tokens = field<uint64_t>(arr[i], "tokens", w);
    s.checksum = parse_hex64(field<std::string>(arr[i], "checksum", w), w + ".checksum");
    bool escapes = s.path.empty() || s.path[0] == '/';
    for (const auto& part : std::filesystem::path(s.path)) escapes = escapes || part == "..";
    if (escapes)
      throw FormatError(w + ".path: must be relative to the dataset directory (got \"" + s.path + "\")");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::string manifest_path(const std::string& dir) { return (std::filesystem::path(dir) / "manifest.json").string(); }

const SourceInfo& Manifest::source(const std::string& name) const {
  for (const auto& s : sources)
    if (s.name == name) return s;
  std::string have;
  for (const auto& s : sources) have += (have.empty() ? "" : ", ") + s.name;
  throw ConfigError("dataset has no source \"" + name + "\" (it has: " + have + ")");
}

uint64_t Manifest::train_tokens() const {
  uint64_t n = 0;
  for (const auto& s : sources) n += s.train_tokens;
  return n;
}

uint64_t Manifest::val_tokens() const {
  uint64_t n = 0;
  for (const auto& s : sources) n += s.val_tokens;
  return n;
}

std::string Manifest::to_json() const {
  json j;
  j["format"] = "teddy-dataset";
  j["version"] = version;
  j["tokenizer"] = {{"path", tokenizer.path}, {"checksum", tokenizer.checksum},
                    {"vocab_size", tokenizer.vocab_size}, {"eot_id", tokenizer.eot_id}};
  if (!tokenizer.file.empty()) j["tokenizer"]["file"] = tokenizer.file;
  j["token_bytes"] = token_bytes;
  j["val_fraction"] = val_fraction;
  j["split_seed"] = split_seed;
  j["sources"] = json::array();
  for (const auto& s : sources) {
    json o = {{"name", s.name}, {"kind", s.kind}, {"paths", s.paths}, {"extensions", s.extensions},
              {"text_field", s.text_field}, {"separator", s.separator}, {"weight", s.weight},
              {"files", s.files}, {"documents", s.documents}, {"skipped", s.skipped},
              {"skipped_examples", s.skipped_examples}, {"bytes", s.bytes},
              {"train_documents", s.train_documents}, {"val_documents", s.val_documents},
              {"train_tokens", s.train_tokens}, {"val_tokens", s.val_tokens},
              {"train_shards", shards_json(s.train_shards)}, {"val_shards", shards_json(s.val_shards)}};
    j["sources"].push_back(std::move(o));
  }
  return j.dump(2) + "\n";
}

Manifest Manifest::from_json(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || j.value("format", "") != "teddy-dataset")
    throw FormatError(where + ": not a teddy dataset manifest (\"format\" must be \"teddy-dataset\")");
  Manifest m;
  m.version = field<int>(j, "version", where);
  if (m.version != kManifestVersion)
    throw FormatError(where + ": unsupported manifest version " + std::to_string(m.version) +
                      " (this build reads " + std::to_string(kManifestVersion) + ")");
  const json t = field<json>(j, "tokenizer", where);
  const std::string tw = where + ".tokenizer";
  m.tokenizer.path = field<std::string>(t, "path", tw);
  m.tokenizer.checksum = field<std::string>(t, "checksum", tw);
  m.tokenizer.vocab_size = field<int64_t>(t, "vocab_size", tw);
  m.tokenizer.eot_id = field<uint32_t>(t, "eot_id", tw);
  if (t.contains("file")) {  // absent in datasets prepared before datasets kept their tokenizer
    m.tokenizer.file = field<std::string>(t, "file", tw);
    const std::filesystem::path f(m.tokenizer.file);
    if (f.empty() || f.is_absolute() || m.tokenizer.file.find("..") != std::string::npos)
      throw FormatError(tw + ".file: \"" + m.tokenizer.file + "\" is not a path inside the dataset directory");
  }
  m.token_bytes = field<uint32_t>(j, "token_bytes", where);
  if (m.token_bytes != 2 && m.token_bytes != 4) throw FormatError(where + ": token_bytes must be 2 or 4");
  m.val_fraction = field<double>(j, "val_fraction", where);
  m.split_seed = field<uint64_t>(j, "split_seed", where);
  const json srcs = field<json>(j, "sources", where);
  if (!srcs.is_array() || srcs.empty()) throw FormatError(where + ": \"sources\" must be a non-empty array");
  for (size_t i = 0; i < srcs.size(); ++i) {
    const std::string w = where + ".sources[" + std::to_string(i) + "]";
    const json& o = srcs[i];
    SourceInfo s;
    s.name = field<std::string>(o, "name", w);
    s.kind = field<std::string>(o, "kind", w);
    s.paths = field<std::vector<std::string>>(o, "paths", w);
    s.extensions = field<std::vector<std::string>>(o, "extensions", w);
    s.text_field = field<std::string>(o, "text_field", w);
    s.separator = field<std::string>(o, "separator", w);
    s.weight = field<double>(o, "weight", w);
    s.files = field<uint64_t>(o, "files", w);
    s.documents = field<uint64_t>(o, "documents", w);
    s.skipped = field<uint64_t>(o, "skipped", w);
    s.skipped_examples = field<std::vector<std::string>>(o, "skipped_examples", w);
    s.bytes = field<uint64_t>(o, "bytes", w);
    s.train_documents = field<uint64_t>(o, "train_documents", w);
    s.val_documents = field<uint64_t>(o, "val_documents", w);
    s.train_tokens = field<uint64_t>(o, "train_tokens", w);
    s.val_tokens = field<uint64_t>(o, "val_tokens", w);
    s.train_shards = shards_from(o, "train_shards", w);
    s.val_shards = shards_from(o, "val_shards", w);
    uint64_t tt = 0, vt = 0;
    for (const auto& sh : s.train_shards) tt += sh.tokens;
    for (const auto& sh : s.val_shards) vt += sh.tokens;
    if (tt != s.train_tokens || vt != s.val_tokens)
      throw FormatError(w + ": shard token counts do not add up to train_tokens/val_tokens");
    m.sources.push_back(std::move(s));
  }
  return m;
}

Manifest Manifest::load(const std::string& dir) {
  const std::string path = manifest_path(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (is " + dir + " a dataset written by `teddy data prepare`?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str(), path);
}

void Manifest::save(const std::string& dir) const { write_file_atomic(manifest_path(dir), to_json()); }

}  // namespace teddy
