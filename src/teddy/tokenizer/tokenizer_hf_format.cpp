// Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, LLaMA-3 style).
//
// Token strings in model.vocab and model.merges are spelled in GPT-2's byte-level
// alphabet (every byte mapped to a printable code point); we map them back to bytes.
// Encoding applies model.merges as HF does (and tries whole words first when
// model.ignore_merges is set). Ranks, for export to tiktoken's format: single bytes
// get their byte value, the token made by merges[i] gets 256 + i (the earliest
// merge if several make the same bytes). Tokens no merge makes are kept for
// decoding but never produced by encoding. All added_tokens become specials
// (matched only with encode_with_special).
//
// Written files list merges as "left right" strings (read by every tokenizers
// version). A vocabulary without merge rules (from tiktoken) gets the split BPE
// would use for each token and ignore_merges, as HF's tiktoken converter does.
#include <array>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_encoder.h"
#include "teddy/io/json_errors.h"
#include "teddy/tokenizer/pretokenizer.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace teddy {
namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other
// 68 bytes to 256, 257, ... in byte order.
struct ByteAlphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};
  ByteAlphabet() {
    to_byte.fill(-1);
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : extra++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;  // immutable after construction
  return a;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {  // the alphabet stays below U+0800
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_alphabet(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) append_utf8(out, alphabet().to_cp[b]);
  return out;
}

// Byte-level string -> bytes; nullopt if a character is outside the alphabet.
std::optional<std::string> from_alphabet(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) {
      cp = (c & 0x1Fu) << 6 | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return std::nullopt;
    }
    if (cp >= 324 || alphabet().to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(alphabet().to_byte[cp]);
  }
  return out;
}

PretokenizerKind pattern_of(const nlohmann::json& pre, const std::string& path) {
  auto fail = [&](const std::string& what) -> PretokenizerKind {
    throw FormatError(path + ": pre_tokenizer: " + what);
  };
  if (!pre.is_object()) return fail("missing (expected ByteLevel or a Split with the LLaMA-3 regex)");
  const std::string type = pre.value("type", "");
  // A prefix space would change every encoding; we do not add one.
  auto check_byte_level = [&](const nlohmann::json& p) {
    if (p.is_object() && p.value("type", "") == "ByteLevel" && p.value("add_prefix_space", false))
      fail("ByteLevel with add_prefix_space is not supported");
  };
  check_byte_level(pre);
  if (pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    for (const auto& p : pre["pretokenizers"]) check_byte_level(p);
  if (type == "ByteLevel") {
    if (pre.value("use_regex", true)) return PretokenizerKind::gpt2;
    return fail("ByteLevel without its regex is not supported");
  }
  auto split_kind = [&](const nlohmann::json& split) -> std::optional<PretokenizerKind> {
    if (!split.is_object() || split.value("type", "") != "Split" || !split.contains("pattern")) return std::nullopt;
    const auto& p = split["pattern"];
    if (!p.is_object() || !p.contains("Regex") || !p["Regex"].is_string()) return std::nullopt;
    const std::string re = p["Regex"].get<std::string>();
    if (re == pretokenizer_pattern(PretokenizerKind::llama3)) return PretokenizerKind::llama3;
    if (re == pretokenizer_pattern(PretokenizerKind::gpt2)) return PretokenizerKind::gpt2;
    return std::nullopt;
  };
  if (type == "Split") {
    if (auto k = split_kind(pre)) return *k;
  } else if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    for (const auto& p : pre["pretokenizers"])
      if (auto k = split_kind(p)) return *k;
  }
  return fail("unsupported (only ByteLevel with its GPT-2 regex, or a Split with the GPT-2 or LLaMA-3 regex)");
}

}  // namespace

uint32_t byte_to_unicode(unsigned char b) { return alphabet().to_cp[b]; }
std::string to_byte_alphabet(std::string_view bytes) { return to_alphabet(bytes); }

BpeVocab parse_hf_tokenizer(std::string_view content, const std::string& path) {
  const nlohmann::json j = parse_json_or_throw(content, path);
  auto fail = [&](const std::string& field, const std::string& what) -> void {
    throw FormatError(path + ": " + field + ": " + what);
  };
  if (!j.is_object()) fail("(root)", "expected an object");
  if (!j.contains("model") || !j["model"].is_object()) fail("model", "missing (expected a BPE model)");
  const auto& model = j["model"];
  if (model.contains("type") && model["type"] != "BPE")
    fail("model.type", "only BPE is supported (got " + model["type"].dump() + ")");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("model.vocab", "missing (expected {token: id})");
  if (!model.contains("merges") || !model["merges"].is_array()) fail("model.merges", "missing (expected an array)");

  // Normalization (NFC, lowercasing, ...) would change ids for some inputs; refuse
  // rather than encode differently from the file's owner.
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    fail("normalizer", "not supported (only null); got " +
                           (j["normalizer"].is_object() ? j["normalizer"].value("type", std::string("?"))
                                                        : j["normalizer"].dump()));

  BpeVocab v;
  if (model.contains("ignore_merges")) {
    if (!model["ignore_merges"].is_boolean()) fail("model.ignore_merges", "expected true or false");
    v.whole_piece_first = model["ignore_merges"].get<bool>();
  }
  v.pattern = pattern_of(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json(), path);
  std::unordered_map<std::string, uint32_t> id_of;  // byte-level spelling -> id
  for (const auto& [key, idj] : model["vocab"].items()) {
    const std::string field = "model.vocab[" + nlohmann::json(key).dump() + "]";
    if (!idj.is_number_unsigned() || idj.get<uint64_t>() >= (1u << 26)) fail(field, "expected a non-negative id");
    const uint32_t id = idj.get<uint32_t>();
    std::optional<std::string> bytes = from_alphabet(key);
    if (!bytes || bytes->empty()) fail(field, "not a byte-level token (character outside GPT-2's byte alphabet)");
    if (id >= v.tokens.size()) {
      v.tokens.resize(id + 1);
      v.ranks.resize(id + 1, BpeVocab::kNoRank);
    }
    if (!v.tokens[id].empty()) fail(field, "id " + std::to_string(id) + " is used twice");
    v.tokens[id] = std::move(*bytes);
    if (v.tokens[id].size() == 1) v.ranks[id] = static_cast<unsigned char>(v.tokens[id][0]);
    id_of.emplace(key, id);
  }
  const auto& merges = model["merges"];
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string field = "model.merges[" + std::to_string(i) + "]";
    std::string a, b;
    if (merges[i].is_string()) {  // "a b" (tokenizers < 0.20)
      const std::string m = merges[i].get<std::string>();
      const size_t sp = m.find(' ');
      if (sp == std::string::npos || m.find(' ', sp + 1) != std::string::npos) fail(field, "expected \"left right\"");
      a = m.substr(0, sp);
      b = m.substr(sp + 1);
    } else if (merges[i].is_array() && merges[i].size() == 2 && merges[i][0].is_string() && merges[i][1].is_string()) {
      a = merges[i][0].get<std::string>();
      b = merges[i][1].get<std::string>();
    } else {
      fail(field, "expected \"left right\" or [\"left\", \"right\"]");
    }
    for (const std::string* t : {&a, &b})
      if (!id_of.count(*t)) fail(field, "token " + nlohmann::json(*t).dump() + " is not in model.vocab");
    const auto merged = id_of.find(a + b);
    if (merged == id_of.end()) fail(field, "merged token " + nlohmann::json(a + b).dump() + " is not in model.vocab");
    uint32_t& rank = v.ranks[merged->second];
    if (rank == BpeVocab::kNoRank) rank = static_cast<uint32_t>(256 + i);
    v.merges.emplace_back(id_of[a], id_of[b]);
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const auto& added = j["added_tokens"];
    if (!added.is_array()) fail("added_tokens", "expected an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const auto& t = added[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() ||
          t["id"].get<uint64_t>() >= (1u << 26) || !t.contains("content") ||
          !t["content"].is_string())
        fail(field, "expected {\"id\": N, \"content\": \"...\"}");
      const uint32_t id = t["id"].get<uint32_t>();
      const std::string text = t["content"].get<std::string>();
      if (text.empty()) fail(field, "empty content");
      if (id < v.tokens.size() && !v.tokens[id].empty() && v.tokens[id] != text)
        fail(field, "id " + std::to_string(id) + " is already a different token in model.vocab");
      if (id < v.tokens.size()) v.ranks[id] = BpeVocab::kNoRank;  // the special is never made by merging
      v.specials.emplace_back(text, id);
    }
  }
  return v;
}

std::string format_hf_tokenizer(const BpeVocab& vocab, const BpeEncoder& encoder) {
  using ojson = nlohmann::ordered_json;
  // The vocab object is written by hand: ordered_json finds keys by linear search,
  // which is quadratic for 50k+ tokens.
  std::string vocab_text = "{";
  for (uint32_t id = 0; id < vocab.tokens.size(); ++id) {
    if (vocab.tokens[id].empty()) continue;
    if (vocab_text.size() > 1) vocab_text += ",";
    vocab_text += "\n      " + nlohmann::json(to_alphabet(vocab.tokens[id])).dump() + ": " + std::to_string(id);
  }
  vocab_text += "\n    }";
  constexpr std::string_view kVocabSlot = "\"@@teddy-vocab@@\"";
  std::vector<std::pair<uint32_t, uint32_t>> order;  // (rank, id) of merged tokens
  for (uint32_t id = 0; id < vocab.tokens.size(); ++id)
    if (vocab.tokens[id].size() > 1 && vocab.ranks[id] != BpeVocab::kNoRank) order.emplace_back(vocab.ranks[id], id);
  std::sort(order.begin(), order.end());
  ojson merges = ojson::array();
  for (const auto& [l, r] : vocab.merges)
    merges.push_back(to_alphabet(vocab.tokens[l]) + " " + to_alphabet(vocab.tokens[r]));
  if (!vocab.merges.empty()) order.clear();
  for (const auto& [rank, id] : order) {
    const std::string& t = vocab.tokens[id];
    const std::vector<uint32_t> parts = encoder.merge_parts(t, rank);  // what BPE joins to make t
    if (parts.size() != 3)
      throw Error("tokenizer.json: token id " + std::to_string(id) +
                  " is not the merge of two lower-ranked tokens; cannot be written as merges");
    merges.push_back(to_alphabet(t.substr(0, parts[1])) + " " + to_alphabet(t.substr(parts[1])));
  }
  ojson added = ojson::array();
  for (const auto& [text, id] : vocab.specials)
    added.push_back({{"id", id}, {"content", text}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ojson pre;
  if (vocab.pattern == PretokenizerKind::gpt2) {
    pre = byte_level;
  } else {
    byte_level["use_regex"] = false;
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            ojson::array({ojson{{"type", "Split"},
                                {"pattern", {{"Regex", std::string(pretokenizer_pattern(vocab.pattern))}}},
                                {"behavior", "Isolated"},
                                {"invert", false}},
                          byte_level})}};
  }
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = pre;
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", vocab.merges.empty() || vocab.whole_piece_first},
                {"vocab", "@@teddy-vocab@@"},
                {"merges", merges}};
  std::string out = j.dump(2, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
  out.replace(out.find(kVocabSlot), kVocabSlot.size(), vocab_text);
  return out;
}

}  // namespace teddy
