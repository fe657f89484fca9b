#pragma once
// Pre-tokenization: split text into pieces with the GPT-2 or LLaMA-3 regex
// (PCRE2, JIT-compiled, Unicode classes). BPE then runs inside each piece.
//
// Any bytes are accepted. The pattern is compiled with PCRE2_MATCH_INVALID_UTF, so
// ill-formed UTF-8 never matches; every maximal run of bytes that no match covers
// (only ill-formed UTF-8 with these patterns) becomes a piece of its own. The pieces
// therefore always tile the input exactly, which is what makes decode(encode(x)) == x.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "teddy/tokenizer/tokenizer.h"  // PretokenizerKind

namespace teddy {

// "gpt2" / "llama3"; throws ConfigError for anything else.
PretokenizerKind pretokenizer_from_name(std::string_view name);
std::string_view pretokenizer_name(PretokenizerKind kind);
// The regex as published (tiktoken / tokenizer.json spelling).
std::string_view pretokenizer_pattern(PretokenizerKind kind);

class Pretokenizer {
 public:
  explicit Pretokenizer(PretokenizerKind kind);
  ~Pretokenizer();
  Pretokenizer(Pretokenizer&&) noexcept;
  Pretokenizer& operator=(Pretokenizer&&) noexcept;

  PretokenizerKind kind() const { return kind_; }

  // Per-call matching state (PCRE2 match data and JIT stack). The compiled pattern
  // is shared read-only, so one Pretokenizer serves many threads, each with its own
  // Scratch.
  class Scratch {
   public:
    explicit Scratch(const Pretokenizer& p);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    struct State;
    std::unique_ptr<State> state;
  };

  // Calls fn(std::string_view piece) for each piece of `text`, in order.
  template <class Fn> void split(std::string_view text, Scratch& scratch, Fn&& fn) const {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t begin = 0, end = 0;
      if (!next_match(text, pos, scratch, begin, end)) {
        fn(text.substr(pos));  // trailing ill-formed bytes
        return;
      }
      if (begin > pos) fn(text.substr(pos, begin - pos));  // ill-formed bytes between matches
      fn(text.substr(begin, end - begin));
      pos = end;
    }
  }
  template <class Fn> void split(std::string_view text, Fn&& fn) const {
    Scratch scratch(*this);
    split(text, scratch, fn);
  }

  // True if the pieces of text[:pos] followed by those of text[pos:] equal the pieces
  // of `text` for both patterns, judged from the bytes around pos alone: pos is at a
  // '\n' whose preceding byte is an ASCII letter or digit (a letter/digit run always
  // ends there and no piece starting at a letter crosses a newline; the newline's
  // piece depends only on what follows). Used to cut text for parallel encoding.
  static bool is_safe_cut(std::string_view text, size_t pos);

 private:
  // Finds the next match at or after `pos`; false when there is none.
  bool next_match(std::string_view text, size_t pos, Scratch& scratch, size_t& begin, size_t& end) const;

  PretokenizerKind kind_;
  struct Code;
  std::unique_ptr<Code> code_;
};

}  // namespace teddy
