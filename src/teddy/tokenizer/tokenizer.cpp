#include "teddy/tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/tokenizer/bpe_encoder.h"
#include "teddy/tokenizer/pretokenizer.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace teddy {

struct Tokenizer::Impl {
  BpeVocab vocab;
  Pretokenizer pre{PretokenizerKind::gpt2};
  BpeEncoder bpe;
  // Decode table: bytes of id i are text[offset[i], offset[i+1]); empty = unknown id.
  std::string decode_text;
  std::vector<uint64_t> decode_offset;
  size_t merges = 0;

  void build_decode_table() {
    std::vector<std::string_view> by_id(vocab.tokens.begin(), vocab.tokens.end());
    for (const auto& [text, id] : vocab.specials) {
      if (id >= by_id.size()) by_id.resize(id + 1);
      by_id[id] = text;
    }
    decode_text.clear();
    decode_offset.assign(1, 0);
    for (std::string_view t : by_id) {
      decode_text.append(t);
      decode_offset.push_back(decode_text.size());
    }
  }
  std::string_view bytes_of(uint32_t id) const {
    if (static_cast<size_t>(id) + 1 >= decode_offset.size()) return {};
    return std::string_view(decode_text).substr(decode_offset[id], decode_offset[id + 1] - decode_offset[id]);
  }
  void encode_ordinary(std::string_view text, std::vector<uint32_t>& out) const {
    Pretokenizer::Scratch scratch(pre);
    BpeEncoder::Cache cache(text.size());
    encode_span(text, out, scratch, cache);
  }
  void encode_span(std::string_view text, std::vector<uint32_t>& out, Pretokenizer::Scratch& scratch,
                   BpeEncoder::Cache& cache) const {
    pre.split(text, scratch, [&](std::string_view piece) { bpe.encode_piece(piece, out, &cache); });
  }
  // Special-token search: a bit per possible first byte and per possible first two
  // bytes filters positions cheaply (LLaMA-3 has 256 specials, all starting "<|").
  std::vector<bool> special_first = std::vector<bool>(256, false);
  std::vector<bool> special_pair = std::vector<bool>(65536, false);
  std::vector<std::vector<uint32_t>> special_by_first = std::vector<std::vector<uint32_t>>(256);  // longest first

  void build_special_index() {
    special_first.assign(256, false);
    special_pair.assign(65536, false);
    for (auto& v : special_by_first) v.clear();
    for (uint32_t k = 0; k < vocab.specials.size(); ++k) {
      const std::string& s = vocab.specials[k].first;
      const unsigned char c0 = static_cast<unsigned char>(s[0]);
      special_first[c0] = true;
      if (s.size() == 1) {
        for (int c1 = 0; c1 < 256; ++c1) special_pair[c0 << 8 | c1] = true;
      } else {
        special_pair[c0 << 8 | static_cast<unsigned char>(s[1])] = true;
      }
      special_by_first[c0].push_back(k);
    }
    for (auto& v : special_by_first)
      std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
        return vocab.specials[a].first.size() > vocab.specials[b].first.size();
      });
  }
  // Earliest special occurrence at or after pos (the longest if several start there):
  // returns its position and sets k, or npos.
  size_t find_special(std::string_view text, size_t pos, uint32_t& k) const {
    for (size_t i = pos; i < text.size(); ++i) {
      const unsigned char c0 = static_cast<unsigned char>(text[i]);
      if (!special_first[c0]) continue;
      const unsigned char c1 = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
      if (i + 1 < text.size() && !special_pair[c0 << 8 | c1]) continue;
      for (uint32_t cand : special_by_first[c0]) {
        if (text.substr(i).starts_with(vocab.specials[cand].first)) {
          k = cand;
          return i;
        }
      }
    }
    return std::string_view::npos;
  }
  // Splits at each special occurrence; between them, ordinary encoding.
  void encode_special(std::string_view text, std::vector<uint32_t>& out) const {
    Pretokenizer::Scratch scratch(pre);
    BpeEncoder::Cache cache(text.size());
    size_t pos = 0;
    uint32_t k = 0;
    for (size_t at; (at = find_special(text, pos, k)) != std::string_view::npos;) {
      encode_span(text.substr(pos, at - pos), out, scratch, cache);
      out.push_back(vocab.specials[k].second);
      pos = at + vocab.specials[k].first.size();
    }
    encode_span(text.substr(pos), out, scratch, cache);
  }
  // True if no special occurrence covers both text[pos - 1] and text[pos].
  bool cut_avoids_specials(std::string_view text, size_t pos) const {
    for (const auto& [s, id] : vocab.specials) {
      if (s.size() < 2) continue;
      const size_t from = pos >= s.size() - 1 ? pos - (s.size() - 1) : 0;
      const size_t hit = text.substr(from, pos - from + s.size() - 1).find(s);
      if (hit != std::string_view::npos && from + hit < pos) return false;
    }
    return true;
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_vocab(BpeVocab vocab) {
  if (vocab.ranks.size() != vocab.tokens.size())
    throw Error("tokenizer: ranks (" + std::to_string(vocab.ranks.size()) + ") and tokens (" +
                std::to_string(vocab.tokens.size()) + ") differ in length");
  Tokenizer t;
  Impl& m = *t.impl_;
  for (uint32_t id = 0; id < vocab.tokens.size(); ++id) {
    if (vocab.ranks[id] == BpeVocab::kNoRank) continue;
    if (vocab.tokens[id].empty()) throw Error("tokenizer: id " + std::to_string(id) + " has a rank but no bytes");
    m.bpe.add(vocab.tokens[id], vocab.ranks[id], id);
    if (vocab.tokens[id].size() > 1) ++m.merges;
  }
  m.bpe.check_all_bytes();
  for (size_t i = 0; i < vocab.merges.size(); ++i) {
    const auto [l, r] = vocab.merges[i];
    const std::string what = "tokenizer: merge " + std::to_string(i) + " (" + std::to_string(l) + ", " + std::to_string(r) + ")";
    if (l >= vocab.tokens.size() || r >= vocab.tokens.size() || vocab.tokens[l].empty() || vocab.tokens[r].empty())
      throw Error(what + " names an id that is not a token");
    const BpeEncoder::Hit made = m.bpe.find(vocab.tokens[l] + vocab.tokens[r]);
    if (made.rank == kNoRank) throw Error(what + " makes bytes that are not a token");
    m.bpe.add_merge(l, r, static_cast<uint32_t>(i), made.id);
  }
  if (!vocab.merges.empty()) {
    m.bpe.set_whole_piece_first(vocab.whole_piece_first);
    m.merges = vocab.merges.size();
  }
  for (size_t k = 0; k < vocab.specials.size(); ++k) {
    const auto& [text, id] = vocab.specials[k];
    if (text.empty()) throw Error("tokenizer: empty special token (id " + std::to_string(id) + ")");
    if (id == BpeVocab::kNoRank) throw Error("tokenizer: special " + text + " has an invalid id");
    if (id < vocab.tokens.size() && (vocab.ranks[id] != BpeVocab::kNoRank ||
                                     (!vocab.tokens[id].empty() && vocab.tokens[id] != text)))
      throw Error("tokenizer: special " + text + " reuses id " + std::to_string(id) + " of an ordinary token");
    for (size_t k2 = 0; k2 < k; ++k2)
      if (vocab.specials[k2].first == text || vocab.specials[k2].second == id)
        throw Error("tokenizer: special " + text + " (id " + std::to_string(id) + ") is given twice");
  }
  m.pre = Pretokenizer(vocab.pattern);
  m.vocab = std::move(vocab);
  m.build_decode_table();
  m.build_special_index();
  return t;
}

Tokenizer Tokenizer::bytes() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) {
    v.tokens.emplace_back(1, static_cast<char>(b));
    v.ranks.push_back(static_cast<uint32_t>(b));
  }
  v.specials.emplace_back("<|endoftext|>", 256);
  return from_vocab(std::move(v));
}

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string content = read_text_file(path);
  BpeVocab v;
  try {
    switch (detect_tokenizer_file(content)) {
      case TokenizerFileKind::teddy: v = parse_teddy_tokenizer(content, path); break;
      case TokenizerFileKind::hf_json: v = parse_hf_tokenizer(content, path); break;
      case TokenizerFileKind::tiktoken:
        v = parse_tiktoken_ranks(content, path);
        v.pattern = tiktoken_default_pattern(v.tokens.size());
        v.specials = tiktoken_default_specials(v.tokens.size());
        break;
    }
  } catch (const nlohmann::json::exception& e) {
    // The parsers check each field's type before reading it; whatever still slips
    // through is the file's fault, and the file is named.
    throw FormatError(path + ": unexpected JSON value: " + e.what());
  }
  try {
    return from_vocab(std::move(v));
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw FormatError(path + ": " + e.what());
  }
}

Tokenizer Tokenizer::load_tiktoken(const std::string& path, PretokenizerKind pattern,
                                   std::vector<std::pair<std::string, uint32_t>> specials) {
  BpeVocab v = parse_tiktoken_ranks(read_text_file(path), path);
  v.pattern = pattern;
  v.specials = std::move(specials);
  try {
    return from_vocab(std::move(v));
  } catch (const Error& e) {
    throw FormatError(path + ": " + e.what());
  }
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 4 + 16);
  impl_->encode_ordinary(text, out);
  return out;
}

std::vector<uint32_t> Tokenizer::encode_with_special(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 4 + 16);
  impl_->encode_special(text, out);
  return out;
}

std::vector<uint32_t> Tokenizer::encode_parallel(std::string_view text, int threads, bool allow_special) const {
  constexpr size_t kMinChunk = 64 * 1024;  // below this, threads cost more than they save
  const size_t n_chunks_wanted = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)) * 8, text.size() / kMinChunk);
  if (threads <= 1 || n_chunks_wanted < 2) return allow_special ? encode_with_special(text) : encode(text);
  // Cut points: from each even split, move forward to the next safe cut.
  std::vector<size_t> cuts{0};
  const size_t step = text.size() / n_chunks_wanted;
  for (size_t k = 1; k < n_chunks_wanted; ++k) {
    size_t p = std::max(k * step, cuts.back() + 1);
    while (p < text.size()) {
      const void* nl = std::memchr(text.data() + p, '\n', text.size() - p);
      if (!nl) { p = text.size(); break; }
      p = static_cast<const char*>(nl) - text.data();
      if (Pretokenizer::is_safe_cut(text, p) && (!allow_special || impl_->cut_avoids_specials(text, p))) break;
      ++p;
    }
    if (p >= text.size()) break;
    cuts.push_back(p);
  }
  cuts.push_back(text.size());
  const size_t n = cuts.size() - 1;
  std::vector<std::vector<uint32_t>> parts(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      const std::string_view chunk = text.substr(cuts[i], cuts[i + 1] - cuts[i]);
      parts[i].reserve(chunk.size() / 4 + 16);
      if (allow_special)
        impl_->encode_special(chunk, parts[i]);
      else
        impl_->encode_ordinary(chunk, parts[i]);
    }
  };
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mutex;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(n)); ++t)
    pool.emplace_back([&] {
      try {
        work();
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  try {
    work();
  } catch (...) {
    std::lock_guard lock(error_mutex);
    if (!error) error = std::current_exception();
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  std::vector<uint32_t> out;
  out.reserve(total);
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (uint32_t id : ids) out.append(token_bytes(id));
  return out;
}

std::string_view Tokenizer::token_bytes(uint32_t id) const {
  const std::string_view b = impl_->bytes_of(id);
  if (b.empty())
    throw Error("decode: token id " + std::to_string(id) + " is not in the vocabulary (size " +
                std::to_string(vocab_size()) + ")");
  return b;
}

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->decode_offset.size()) - 1; }

std::optional<uint32_t> Tokenizer::find_eot() const {
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>"})
    if (const auto id = find_special(name)) return id;
  return std::nullopt;
}

uint32_t Tokenizer::eot_id() const {
  if (const auto id = find_eot()) return *id;
  throw Error("tokenizer: no <|endoftext|> (or <|end_of_text|>) special token");
}

std::optional<uint32_t> Tokenizer::find_special(std::string_view text) const {
  for (const auto& [t, id] : impl_->vocab.specials)
    if (t == text) return id;
  return std::nullopt;
}

uint32_t Tokenizer::special_id(std::string_view text) const {
  if (const auto id = find_special(text)) return *id;
  throw Error("tokenizer: no special token " + std::string(text));
}

uint32_t Tokenizer::add_special(std::string_view text) {
  if (text.empty()) throw Error("tokenizer: empty special token");
  for (const auto& [t, id] : impl_->vocab.specials)
    if (t == text) return id;
  const uint32_t id = static_cast<uint32_t>(vocab_size());
  impl_->vocab.specials.emplace_back(std::string(text), id);
  impl_->build_decode_table();
  impl_->build_special_index();
  return id;
}

PretokenizerKind Tokenizer::pattern() const { return impl_->vocab.pattern; }
const BpeVocab& Tokenizer::vocab() const { return impl_->vocab; }
size_t Tokenizer::merge_count() const { return impl_->merges; }

void Tokenizer::save(const std::string& path) const {
  std::string text;
  try {
    text = format_teddy_tokenizer(impl_->vocab);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": cannot write tokenizer: " + e.what());
  }
  write_file_atomic(path, text);
}

void Tokenizer::save_tiktoken(const std::string& path) const {
  write_file_atomic(path, format_tiktoken_ranks(impl_->vocab));
}

std::string Tokenizer::to_hf_json() const {
  try {
    return format_hf_tokenizer(impl_->vocab, impl_->bpe);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("cannot write tokenizer.json: ") + e.what());
  }
}

void Tokenizer::save_hf_json(const std::string& path) const {
  std::string text;
  try {
    text = to_hf_json();
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  write_file_atomic(path, text);
}

}  // namespace teddy
