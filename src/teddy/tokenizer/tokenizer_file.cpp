// Format detection, file reading and teddy's own tokenizer format.
#include "teddy/tokenizer/tokenizer_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/tokenizer/base64.h"
#include "teddy/io/json_errors.h"
#include "teddy/tokenizer/pretokenizer.h"

namespace teddy {

namespace {
constexpr std::string_view kTeddyFormat = "teddy-bpe";
constexpr int kTeddyVersion = 1;
}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return std::move(ss).str();
}

TokenizerFileKind detect_tokenizer_file(std::string_view content) {
  const size_t first = content.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || content[first] != '{') return TokenizerFileKind::tiktoken;
  // Cheap sniff: our files say so near the top; anything else JSON is Hugging Face's.
  const std::string_view head = content.substr(0, 4096);
  if (head.find("\"teddy-bpe\"") != std::string_view::npos) return TokenizerFileKind::teddy;
  return TokenizerFileKind::hf_json;
}

BpeVocab parse_teddy_tokenizer(std::string_view content, const std::string& path) {
  const nlohmann::json j = parse_json_or_throw(content, path);
  auto fail = [&](const std::string& field, const std::string& what) -> void {
    throw FormatError(path + ": " + field + ": " + what);
  };
  if (!j.is_object()) fail("(root)", "expected an object");
  if (j.value("format", "") != kTeddyFormat) fail("format", "expected \"teddy-bpe\"");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != kTeddyVersion)
    fail("version", "expected 1");
  BpeVocab v;
  if (!j.contains("pattern") || !j["pattern"].is_string()) fail("pattern", "missing (expected \"gpt2\" or \"llama3\")");
  try {
    v.pattern = pretokenizer_from_name(j["pattern"].get<std::string>());
  } catch (const ConfigError&) {
    fail("pattern", "expected \"gpt2\" or \"llama3\" (got \"" + j["pattern"].get<std::string>() + "\")");
  }
  if (!j.contains("tokens") || !j["tokens"].is_array()) fail("tokens", "missing (expected an array of base64 strings)");
  const auto& tokens = j["tokens"];
  v.tokens.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string field = "tokens[" + std::to_string(i) + "]";
    if (!tokens[i].is_string()) fail(field, "expected a base64 string");
    std::optional<std::string> bytes = base64_decode(tokens[i].get<std::string>());
    if (!bytes) fail(field, "not valid base64");
    v.tokens.push_back(std::move(*bytes));
  }
  v.ranks.assign(v.tokens.size(), BpeVocab::kNoRank);
  if (j.contains("ranks")) {
    const auto& ranks = j["ranks"];
    if (!ranks.is_array() || ranks.size() != v.tokens.size())
      fail("ranks", "expected an array as long as tokens (" + std::to_string(v.tokens.size()) + ")");
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (!ranks[i].is_number_integer() || ranks[i].get<int64_t>() < -1 || ranks[i].get<int64_t>() >= BpeVocab::kNoRank)
        fail("ranks[" + std::to_string(i) + "]", "expected an integer >= -1");
      const int64_t r = ranks[i].get<int64_t>();
      if (r >= 0 && v.tokens[i].empty()) fail("ranks[" + std::to_string(i) + "]", "rank given for an empty token");
      v.ranks[i] = r < 0 ? BpeVocab::kNoRank : static_cast<uint32_t>(r);
    }
  } else {
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (!v.tokens[i].empty()) v.ranks[i] = static_cast<uint32_t>(i);
  }
  if (j.contains("merges")) {
    const auto& merges = j["merges"];
    if (!merges.is_array()) fail("merges", "expected an array of [left id, right id]");
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& m = merges[i];
      if (!m.is_array() || m.size() != 2 || !m[0].is_number_unsigned() || !m[1].is_number_unsigned() ||
          m[0].get<uint64_t>() >= v.tokens.size() || m[1].get<uint64_t>() >= v.tokens.size())
        fail("merges[" + std::to_string(i) + "]", "expected [left id, right id] with ids below " +
                                                      std::to_string(v.tokens.size()));
      v.merges.emplace_back(m[0].get<uint32_t>(), m[1].get<uint32_t>());
    }
    if (j.contains("whole_piece_first")) {
      if (!j["whole_piece_first"].is_boolean()) fail("whole_piece_first", "expected true or false");
      v.whole_piece_first = j["whole_piece_first"].get<bool>();
    }
  }
  if (j.contains("specials")) {
    if (!j["specials"].is_object()) fail("specials", "expected an object {text: id}");
    for (const auto& [text, id] : j["specials"].items()) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= BpeVocab::kNoRank)
        fail("specials[\"" + text + "\"]", "expected a non-negative id");
      v.specials.emplace_back(text, id.get<uint32_t>());
    }
  }
  return v;
}

std::string format_teddy_tokenizer(const BpeVocab& vocab) {
  nlohmann::ordered_json j;
  j["format"] = kTeddyFormat;
  j["version"] = kTeddyVersion;
  j["pattern"] = pretokenizer_name(vocab.pattern);
  nlohmann::ordered_json specials = nlohmann::ordered_json::object();
  for (const auto& [text, id] : vocab.specials) specials[text] = id;
  j["specials"] = specials;
  bool rank_is_id = true;
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const uint32_t implied = vocab.tokens[i].empty() ? BpeVocab::kNoRank : static_cast<uint32_t>(i);
    if (vocab.ranks[i] != implied) rank_is_id = false;
  }
  nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
  for (const std::string& t : vocab.tokens) tokens.push_back(base64_encode(t));
  j["tokens"] = std::move(tokens);
  if (!vocab.merges.empty()) {
    nlohmann::ordered_json merges = nlohmann::ordered_json::array();
    for (const auto& [l, r] : vocab.merges) merges.push_back({l, r});
    j["merges"] = std::move(merges);
    j["whole_piece_first"] = vocab.whole_piece_first;
  }
  if (!rank_is_id) {
    nlohmann::ordered_json ranks = nlohmann::ordered_json::array();
    for (uint32_t r : vocab.ranks) ranks.push_back(r == BpeVocab::kNoRank ? int64_t{-1} : int64_t{r});
    j["ranks"] = std::move(ranks);
  }
  // One line per field keeps the file small and greppable.
  std::string out = "{\n";
  bool first = true;
  for (const auto& [key, value] : j.items()) {
    if (!first) out += ",\n";
    first = false;
    out += "  " + nlohmann::json(key).dump() + ": " + value.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  }
  out += "\n}\n";
  return out;
}

}  // namespace teddy
