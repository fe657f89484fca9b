#include "teddy/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>

#include "teddy/core/error.h"

namespace teddy {
namespace {

uint64_t pair_key(uint32_t a, uint32_t b) { return uint64_t{a} << 32 | b; }
uint32_t key_left(uint64_t k) { return static_cast<uint32_t>(k >> 32); }
uint32_t key_right(uint64_t k) { return static_cast<uint32_t>(k); }

struct Candidate {
  int64_t count;
  uint64_t key;
  // Max-heap order: larger count first, then smaller (left, right).
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : key > o.key; }
};

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options) : options_(std::move(options)), pre_(options_.pattern) {
  const int min_size = 256 + static_cast<int>(options_.specials.size());
  if (options_.vocab_size < min_size)
    throw ConfigError("vocab_size: must be at least 256 + the number of specials = " + std::to_string(min_size) +
                      " (got " + std::to_string(options_.vocab_size) + ")");
  for (size_t i = 0; i < options_.specials.size(); ++i) {
    if (options_.specials[i].empty()) throw ConfigError("specials: empty special token");
    for (size_t k = 0; k < i; ++k)
      if (options_.specials[k] == options_.specials[i])
        throw ConfigError("specials: " + options_.specials[i] + " is given twice");
  }
}

void BpeTrainer::add_piece(std::string_view piece, uint64_t count) {
  if (piece.empty() || count == 0) return;
  auto it = counts_.find(piece);
  if (it == counts_.end())
    counts_.emplace(std::string(piece), count);
  else
    it->second += count;
}

void BpeTrainer::add_text(std::string_view text) {
  Pretokenizer::Scratch scratch(pre_);
  auto count_span = [&](std::string_view span) {
    pre_.split(span, scratch, [&](std::string_view piece) { add_piece(piece); });
  };
  // Cut out special-token text so no merge ever spans it.
  size_t pos = 0;
  for (;;) {
    size_t best = std::string_view::npos, len = 0;
    for (const std::string& s : options_.specials) {
      const size_t at = text.find(s, pos);
      if (at < best || (at == best && at != std::string_view::npos && s.size() > len)) {
        best = at;
        len = s.size();
      }
    }
    if (best == std::string_view::npos) break;
    count_span(text.substr(pos, best - pos));
    pos = best + len;
  }
  count_span(text.substr(pos));
}

Tokenizer BpeTrainer::train() {
  const size_t n_tokens = static_cast<size_t>(options_.vocab_size) - options_.specials.size();
  // Words in byte order, so iteration order never depends on hashing.
  std::vector<std::pair<std::string_view, uint64_t>> sorted;
  sorted.reserve(counts_.size());
  for (const auto& [piece, count] : counts_) sorted.emplace_back(piece, count);
  std::sort(sorted.begin(), sorted.end());

  std::vector<std::vector<uint32_t>> words(sorted.size());
  std::vector<int64_t> word_count(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;  // may list a word twice or stale
  for (uint32_t w = 0; w < sorted.size(); ++w) {
    const auto& [piece, count] = sorted[w];
    word_count[w] = static_cast<int64_t>(count);
    words[w].reserve(piece.size());
    for (unsigned char c : piece) words[w].push_back(c);
    for (size_t i = 0; i + 1 < piece.size(); ++i) {
      const uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      pair_count[k] += word_count[w];
      auto& list = pair_words[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::string> token_bytes(256);
  std::unordered_map<std::string, uint32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    token_bytes[b] = std::string(1, static_cast<char>(b));
    id_of.emplace(token_bytes[b], b);
  }
  merges_.clear();
  std::vector<uint64_t> touched;
  std::vector<uint32_t> merged;
  while (token_bytes.size() < n_tokens && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const auto it = pair_count.find(top.key);
    const int64_t current = it == pair_count.end() ? 0 : it->second;
    if (current != top.count) {  // stale: requeue with the current count
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    if (current <= 0) continue;
    const uint32_t a = key_left(top.key), b = key_right(top.key);
    std::string bytes = token_bytes[a] + token_bytes[b];
    const auto known = id_of.find(bytes);
    const uint32_t id = known != id_of.end() ? known->second : static_cast<uint32_t>(token_bytes.size());
    if (known == id_of.end()) {
      id_of.emplace(bytes, id);
      token_bytes.push_back(std::move(bytes));
    }
    merges_.push_back({a, b, id, current});

    std::vector<uint32_t> where = std::move(pair_words[top.key]);
    pair_words.erase(top.key);
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    touched.clear();
    for (uint32_t w : where) {
      std::vector<uint32_t>& syms = words[w];
      bool found = false;
      for (size_t i = 0; i + 1 < syms.size() && !found; ++i) found = syms[i] == a && syms[i + 1] == b;
      if (!found) continue;  // stale entry: an earlier merge already consumed the pair here
      const int64_t c = word_count[w];
      // Only pairs that involve a, b or the new id can change; subtract the word's old
      // ones, rewrite the word, add the new ones.
      auto involved = [&](uint32_t x, uint32_t y) { return x == a || x == b || y == a || y == b || x == id || y == id; };
      for (size_t i = 0; i + 1 < syms.size(); ++i)
        if (involved(syms[i], syms[i + 1])) {
          const uint64_t k = pair_key(syms[i], syms[i + 1]);
          pair_count[k] -= c;
          touched.push_back(k);
        }
      merged.clear();
      for (size_t i = 0; i < syms.size();) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          merged.push_back(id);
          i += 2;
        } else {
          merged.push_back(syms[i]);
          i += 1;
        }
      }
      syms.assign(merged.begin(), merged.end());
      for (size_t i = 0; i + 1 < syms.size(); ++i)
        if (involved(syms[i], syms[i + 1])) {
          const uint64_t k = pair_key(syms[i], syms[i + 1]);
          pair_count[k] += c;
          touched.push_back(k);
          if (syms[i] == id || syms[i + 1] == id) {
            auto& list = pair_words[k];
            if (list.empty() || list.back() != w) list.push_back(w);
          }
        }
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      const auto t = pair_count.find(k);
      if (t == pair_count.end()) continue;
      if (t->second <= 0) {
        pair_count.erase(t);
        if (k != top.key) {
          // Its word list is all stale now; drop it to save memory.
          pair_words.erase(k);
        }
      } else {
        heap.push({t->second, k});
      }
    }
    pair_count.erase(top.key);
  }

  BpeVocab v;
  v.pattern = options_.pattern;
  v.tokens = std::move(token_bytes);
  v.ranks.resize(v.tokens.size());
  for (uint32_t i = 0; i < v.ranks.size(); ++i) v.ranks[i] = i;
  for (const BpeMerge& m : merges_) v.merges.emplace_back(m.left, m.right);
  for (const std::string& s : options_.specials) {
    v.specials.emplace_back(s, static_cast<uint32_t>(v.tokens.size()));
    v.tokens.emplace_back();
    v.ranks.push_back(BpeVocab::kNoRank);
  }
  return Tokenizer::from_vocab(std::move(v));
}

}  // namespace teddy
