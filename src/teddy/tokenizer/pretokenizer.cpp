#include "teddy/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "teddy/core/error.h"

namespace teddy {
namespace {

// The published patterns (tiktoken's pat_str / tokenizer.json).
constexpr std::string_view kGpt2Published =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Published =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// What we compile. tiktoken's engine (Rust regex) defines \s as the Unicode
// White_Space property; PCRE2's \s under PCRE2_UCP also matches U+180E (Mongolian
// vowel separator, not White_Space since Unicode 6.3). Spelling the class out keeps
// the splits identical to tiktoken's.
#define TEDDY_WS R"(\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})"
constexpr const char* kGpt2Compiled =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" TEDDY_WS R"(\p{L}\p{N}]+|[)" TEDDY_WS
    R"(]+(?![^)" TEDDY_WS R"(])|[)" TEDDY_WS R"(]+)";
constexpr const char* kLlama3Compiled =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^)" TEDDY_WS
    R"(\p{L}\p{N}]+[\r\n]*|[)" TEDDY_WS R"(]*[\r\n]+|[)" TEDDY_WS R"(]+(?![^)" TEDDY_WS
    R"(])|[)" TEDDY_WS R"(]+)";
#undef TEDDY_WS

constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 16 * 1024 * 1024;

}  // namespace

PretokenizerKind pretokenizer_from_name(std::string_view name) {
  if (name == "gpt2") return PretokenizerKind::gpt2;
  if (name == "llama3") return PretokenizerKind::llama3;
  throw ConfigError("pattern: must be gpt2 or llama3 (got " + std::string(name) + ")");
}

std::string_view pretokenizer_name(PretokenizerKind kind) {
  return kind == PretokenizerKind::gpt2 ? "gpt2" : "llama3";
}

std::string_view pretokenizer_pattern(PretokenizerKind kind) {
  return kind == PretokenizerKind::gpt2 ? kGpt2Published : kLlama3Published;
}

struct Pretokenizer::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

struct Pretokenizer::Scratch::State {
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ~State() {
    pcre2_match_data_free(match);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

Pretokenizer::Pretokenizer(PretokenizerKind kind) : kind_(kind), code_(std::make_unique<Code>()) {
  const char* pattern = kind == PretokenizerKind::gpt2 ? kGpt2Compiled : kLlama3Compiled;
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("pretokenizer: PCRE2 cannot compile the " + std::string(pretokenizer_name(kind)) +
                " pattern at offset " + std::to_string(err_offset) + ": " + reinterpret_cast<char*>(msg));
  }
  // JIT is a speed-up only; the interpreter gives the same matches.
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() = default;
Pretokenizer::Pretokenizer(Pretokenizer&&) noexcept = default;
Pretokenizer& Pretokenizer::operator=(Pretokenizer&&) noexcept = default;

Pretokenizer::Scratch::Scratch(const Pretokenizer& p) : state(std::make_unique<State>()) {
  state->match = pcre2_match_data_create(1, nullptr);
  state->context = pcre2_match_context_create(nullptr);
  if (!state->match || !state->context) throw Error("pretokenizer: out of memory");
  // PCRE2's default limit (10 million backtracking steps) trips on a run of a few
  // million spaces; our patterns backtrack at most linearly, so lift it.
  pcre2_set_match_limit(state->context, UINT32_MAX);
  if (p.code_->jit) {
    state->stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
    if (!state->stack) throw Error("pretokenizer: out of memory");
    pcre2_jit_stack_assign(state->context, nullptr, state->stack);
  }
}

Pretokenizer::Scratch::~Scratch() = default;

bool Pretokenizer::next_match(std::string_view text, size_t pos, Scratch& scratch, size_t& begin,
                              size_t& end) const {
  auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  Scratch::State* s = scratch.state.get();
  int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), pos, 0, s->match, s->context)
                      : pcre2_match(code_->code, subject, text.size(), pos, 0, s->match, s->context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw Error("pretokenizer: PCRE2 match failed at byte " + std::to_string(pos) + ": " +
                reinterpret_cast<char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s->match);
  begin = ov[0];
  end = ov[1];
  // Every alternative consumes at least one character, so an empty match means a bug.
  if (end <= begin) throw Error("pretokenizer: empty match at byte " + std::to_string(begin));
  return true;
}

bool Pretokenizer::is_safe_cut(std::string_view text, size_t pos) {
  if (pos == 0 || pos >= text.size() || text[pos] != '\n') return false;
  const unsigned char c = static_cast<unsigned char>(text[pos - 1]);
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace teddy
