// tiktoken rank files: "<base64 token bytes> <rank>" per line, id = rank.
#include <algorithm>
#include <charconv>

#include "teddy/core/error.h"
#include "teddy/tokenizer/base64.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace teddy {
namespace {

[[noreturn]] void fail(const std::string& path, size_t line, const std::string& what) {
  throw FormatError(path + ":" + std::to_string(line) + ": " + what);
}

std::string excerpt(std::string_view s) {
  return std::string(s.substr(0, 40)) + (s.size() > 40 ? "..." : "");
}

}  // namespace

BpeVocab parse_tiktoken_ranks(std::string_view content, const std::string& path) {
  BpeVocab v;
  v.pattern = PretokenizerKind::gpt2;
  size_t line_no = 0, pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string_view::npos) eol = content.size();
    std::string_view line = content.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || line.find(' ', sp + 1) != std::string_view::npos)
      fail(path, line_no, "expected '<base64 token> <rank>' (got '" + excerpt(line) + "')");
    const std::string_view b64 = line.substr(0, sp), rank_text = line.substr(sp + 1);
    std::optional<std::string> bytes = base64_decode(b64);
    if (!bytes) fail(path, line_no, "token is not valid base64 (got '" + excerpt(b64) + "')");
    if (bytes->empty()) fail(path, line_no, "empty token");
    uint32_t rank = 0;
    auto [end, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || end != rank_text.data() + rank_text.size() || rank == BpeVocab::kNoRank)
      fail(path, line_no, "rank is not a non-negative 32-bit integer (got '" + excerpt(rank_text) + "')");
    if (rank >= (1u << 26)) fail(path, line_no, "rank " + std::to_string(rank) + " is implausibly large");
    if (rank >= v.tokens.size()) {
      v.tokens.resize(rank + 1);
      v.ranks.resize(rank + 1, BpeVocab::kNoRank);
    }
    if (!v.tokens[rank].empty()) fail(path, line_no, "rank " + std::to_string(rank) + " appears twice");
    v.tokens[rank] = std::move(*bytes);
    v.ranks[rank] = rank;
  }
  if (v.tokens.empty()) throw FormatError(path + ": no tokens (expected '<base64 token> <rank>' lines)");
  return v;
}

// cl100k_base (100256 ranks) uses the same regex as LLaMA-3 (128000 ranks).
PretokenizerKind tiktoken_default_pattern(size_t n_ranks) {
  return n_ranks == 128000 || n_ranks == 100256 ? PretokenizerKind::llama3 : PretokenizerKind::gpt2;
}

std::vector<std::pair<std::string, uint32_t>> tiktoken_default_specials(size_t n_ranks) {
  std::vector<std::pair<std::string, uint32_t>> s;
  if (n_ranks == 128000) {
    // LLaMA-3.1's layout (Meta's tokenizer.py); the ids of begin/end of text, the
    // header markers and <|eot_id|> are the same in LLaMA-3.0.
    const char* named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                           "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
                           "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
    uint32_t id = 128000;
    for (const char* t : named) s.emplace_back(t, id++);
    for (int r = 3; id < 128256; ++r) s.emplace_back("<|reserved_special_token_" + std::to_string(r) + "|>", id++);
    return s;
  }
  if (n_ranks == 100256) {  // cl100k_base, as tiktoken defines it
    s = {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259},
         {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276}};
    return s;
  }
  s.emplace_back("<|endoftext|>", static_cast<uint32_t>(n_ranks));  // gpt2: 50256
  return s;
}

std::string format_tiktoken_ranks(const BpeVocab& vocab) {
  // The file's rank is the id, so the ids of merged tokens must be ordered like
  // their ranks (only the relative order of multi-byte ranks matters to BPE).
  std::vector<std::pair<uint32_t, uint32_t>> merged;  // (rank, id)
  for (uint32_t id = 0; id < vocab.tokens.size(); ++id)
    if (vocab.tokens[id].size() > 1 && vocab.ranks[id] != BpeVocab::kNoRank) merged.emplace_back(vocab.ranks[id], id);
  std::sort(merged.begin(), merged.end());
  for (size_t i = 1; i < merged.size(); ++i)
    if (merged[i].second < merged[i - 1].second)
      throw Error("tiktoken format: token ids are not in merge order (id " + std::to_string(merged[i].second) +
                  " merges after id " + std::to_string(merged[i - 1].second) + "); save in teddy's format instead");
  std::string out;
  for (uint32_t id = 0; id < vocab.tokens.size(); ++id) {
    if (vocab.tokens[id].empty() || vocab.ranks[id] == BpeVocab::kNoRank) continue;
    out += base64_encode(vocab.tokens[id]);
    out += ' ';
    out += std::to_string(id);
    out += '\n';
  }
  return out;
}

}  // namespace teddy
