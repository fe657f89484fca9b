#pragma once
// Byte-level BPE tokenizer (GPT-2 / tiktoken style). Losslessly encodes any bytes.
//
// Encoding = pre-tokenize with the GPT-2 or LLaMA-3 regex (pretokenizer.h), then
// merge the bytes of each piece (bpe_encoder.h): by listed merge pairs when the
// vocabulary has them (Hugging Face, trained), else by token rank (tiktoken).
// Ids of single bytes, merged tokens and special tokens all live in one id space.
// See docs/TOKENIZER.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace teddy {

enum class PretokenizerKind { gpt2, llama3 };

// Everything a tokenizer is made of; what the file readers and the trainer produce.
struct BpeVocab {
  static constexpr uint32_t kNoRank = UINT32_MAX;
  PretokenizerKind pattern = PretokenizerKind::gpt2;
  // Token bytes by id. "" marks an id with no ordinary token (a special's id, or a hole).
  std::vector<std::string> tokens;
  // Merge priority by id, lower merges first; kNoRank for tokens BPE never produces
  // (e.g. a special's text that is also in a Hugging Face vocab). Same size as tokens.
  std::vector<uint32_t> ranks;
  // Special tokens (text, id), matched only by encode_with_special.
  std::vector<std::pair<std::string, uint32_t>> specials;
  // Merge rules (left id, right id), highest priority first. Present (Hugging Face
  // files, trained tokenizers): BPE applies these pairs, as HF tokenizers does.
  // Empty (tiktoken files): BPE joins the adjacent parts whose bytes form the
  // lowest-ranked token, as tiktoken does.
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  // With merges: a piece that is a token is emitted whole (HF's ignore_merges).
  bool whole_piece_first = false;
};

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Loads teddy's own tokenizer file, a Hugging Face tokenizer.json (BPE) or a tiktoken
  // rank file (detected from the content). Throws FormatError naming file and line/field.
  // A tiktoken file carries no pattern or specials; they are inferred from its size:
  // 50256 ranks -> gpt2 + <|endoftext|>=50256; 100256 -> cl100k_base (llama3 regex,
  // tiktoken's specials); 128000 -> llama3 + LLaMA-3.1 specials; otherwise gpt2 +
  // <|endoftext|> at the next id. Use load_tiktoken to say otherwise.
  static Tokenizer load(const std::string& path);
  static Tokenizer load_tiktoken(const std::string& path, PretokenizerKind pattern,
                                 std::vector<std::pair<std::string, uint32_t>> specials);
  // A 256-token byte-level tokenizer plus <|endoftext|> (id 256): no merges.
  static Tokenizer bytes();
  // Builds from a vocabulary. Throws Error if a byte has no token, two mergeable
  // tokens share bytes, or ids collide.
  static Tokenizer from_vocab(BpeVocab vocab);

  // Ordinary encoding: special-token text is treated as plain text.
  std::vector<uint32_t> encode(std::string_view text) const;
  // Like encode, but exact special-token strings (e.g. "<|endoftext|>") become their ids.
  std::vector<uint32_t> encode_with_special(std::string_view text) const;
  // Same ids as encode / encode_with_special, using up to `threads` threads. The text
  // is cut only at a '\n' that follows an ASCII letter or digit, where both patterns
  // split anyway (Pretokenizer::is_safe_cut), and never inside a special token.
  std::vector<uint32_t> encode_parallel(std::string_view text, int threads, bool allow_special = false) const;
  // Throws Error for an id that is not in the vocabulary.
  std::string decode(std::span<const uint32_t> ids) const;
  // Bytes of one token (a special's text for a special id). Throws Error if unknown.
  std::string_view token_bytes(uint32_t id) const;

  int vocab_size() const;       // number of ids (max id + 1), specials included
  uint32_t eot_id() const;      // <|endoftext|> (or LLaMA-3's <|end_of_text|>); throws Error if neither
  std::optional<uint32_t> find_eot() const;  // the same, or nullopt
  // Id of a special token by its text; throws Error if absent.
  uint32_t special_id(std::string_view text) const;
  std::optional<uint32_t> find_special(std::string_view text) const;  // the same, or nullopt
  // Adds a new special token (e.g. chat template markers) at the next free id.
  // Returns the existing id if `text` is already a special token.
  uint32_t add_special(std::string_view text);

  PretokenizerKind pattern() const;
  const BpeVocab& vocab() const;
  size_t merge_count() const;  // merge rules, or mergeable tokens longer than one byte

  void save(const std::string& path) const;  // teddy's own format (atomic write)
  // Other formats, for interchange (atomic writes).
  // Ranks only: pattern, specials and merge rules are lost (tiktoken's byte rule applies).
  void save_tiktoken(const std::string& path) const;
  void save_hf_json(const std::string& path) const;    // Hugging Face tokenizer.json (BPE)
  std::string to_hf_json() const;                      // the same text

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
  friend class BpeTrainer;
};

}  // namespace teddy
