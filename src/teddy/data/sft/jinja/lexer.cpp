#include "teddy/data/sft/jinja/lexer.h"

#include <cstring>

#include "teddy/data/sft/jinja/error.h"
#include "teddy/data/sft/jinja/value.h"

namespace teddy::jinja {

namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Jinja reads template sources with universal newlines and drops one trailing newline
// (keep_trailing_newline = False).
std::string normalise(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(const std::string& src, const std::string& where, const LexOptions& opt) : s_(normalise(src)), where_(where), opt_(opt) {}

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag's text ended with a newline (or this is the start)
    while (pos_ < s_.size()) {
      size_t q = pos_;
      while ((q = s_.find('{', q)) != std::string::npos) {
        if (q + 1 < s_.size() && std::strchr("{%#", s_[q + 1])) break;
        ++q;
      }
      std::string text = s_.substr(pos_, q == std::string::npos ? std::string::npos : q - pos_);
      const int tl = line_, tc = col_;
      if (q != std::string::npos) {
        const char kind = s_[q + 1];
        const char sign = q + 2 < s_.size() ? s_[q + 2] : 0;
        if (sign == '-') {
          size_t e = text.size();
          while (e > 0 && space(text[e - 1])) --e;
          text.resize(e);
        } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
          const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
          if ((l > 0 || line_starting) && l < text.size()) {
            bool ws = true;
            for (size_t k = l; k < text.size() && ws; ++k) ws = space(text[k]);
            if (ws) text.resize(l);
          }
        }
      }
      if (!text.empty()) out_.push_back({Tok::text, text, tl, tc});
      advance_to(q == std::string::npos ? s_.size() : q);
      if (q == std::string::npos) break;
      const char kind = s_[pos_ + 1];
      const int line = line_, col = col_;
      advance_to(pos_ + 2);
      if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) advance_to(pos_ + 1);
      if (kind == '#') {
        const size_t e = s_.find("#}", pos_);
        if (e == std::string::npos) throw JinjaError(at(where_, line, col, "unclosed comment (no #})"));
        const char before = e > pos_ ? s_[e - 1] : 0;
        advance_to(e + 2);
        line_starting = end_of_tag(before == '-', before == '+');
        continue;
      }
      out_.push_back({kind == '{' ? Tok::var_begin : Tok::block_begin, "", line, col});
      line_starting = expression(kind == '{', line, col);
    }
    out_.push_back({Tok::eof, "", line_, col_});
    return std::move(out_);
  }

 private:
  void advance_to(size_t p) {
    for (; pos_ < p; ++pos_) {
      if (s_[pos_] == '\n') {
        ++line_;
        col_ = 1;
      } else {
        ++col_;
      }
    }
  }

  // After a tag's closing delimiter: `-` strips the following whitespace, trim_blocks
  // one newline after block and comment tags. Returns whether a newline was consumed last.
  bool end_of_tag(bool strip, bool keep, bool block = true) {
    if (strip) {
      size_t p = pos_;
      while (p < s_.size() && space(s_[p])) ++p;
      const bool nl = p > pos_ && s_[p - 1] == '\n';
      advance_to(p);
      return nl;
    }
    if (block && !keep && opt_.trim_blocks && pos_ < s_.size() && s_[pos_] == '\n') {
      advance_to(pos_ + 1);
      return true;
    }
    return false;
  }

  // Tokens of a {{ }} or {% %} tag up to and including its end. Returns end_of_tag's answer.
  bool expression(bool var, int tag_line, int tag_col) {
    int depth = 0;  // open brackets: "}}" inside a dict literal does not end the tag
    while (true) {
      while (pos_ < s_.size() && space(s_[pos_])) advance_to(pos_ + 1);
      if (pos_ >= s_.size())
        throw JinjaError(at(where_, tag_line, tag_col, std::string("unclosed tag (no ") + (var ? "}}" : "%}") + ")"));
      const char* end = var ? "}}" : "%}";
      const int line = line_, col = col_;
      const char c = s_[pos_];
      if (depth == 0) {
        for (const char* prefix : {"-", "+", ""}) {
          const std::string e = prefix + std::string(end);
          if (s_.compare(pos_, e.size(), e) == 0) {
            advance_to(pos_ + e.size());
            out_.push_back({var ? Tok::var_end : Tok::block_end, "", line, col});
            return end_of_tag(*prefix == '-', *prefix == '+', !var);
          }
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        out_.push_back({Tok::name, s_.substr(pos_, e - pos_), line, col});
        advance_to(e);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        number(line, col);
      } else if (c == '\'' || c == '"') {
        string(line, col);
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                    "=",  ".",  ",",  ":",  "|",  "(",  ")", "[", "]", "{", "}"};
        const char* hit = nullptr;
        for (const char* o : ops)
          if (s_.compare(pos_, std::strlen(o), o) == 0) {
            hit = o;
            break;
          }
        if (!hit) throw JinjaError(at(where_, line, col, std::string("unexpected character '") + c + "'"));
        if (std::strchr("([{", *hit)) ++depth;
        if (std::strchr(")]}", *hit) && depth > 0) --depth;
        out_.push_back({Tok::op, hit, line, col});
        advance_to(pos_ + std::strlen(hit));
      }
    }
  }

  void number(int line, int col) {
    auto digits = [&](size_t p) {
      while (p < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p])) || s_[p] == '_')) ++p;
      return p;
    };
    size_t e = digits(pos_);
    bool is_float = false;
    if (e + 1 < s_.size() && s_[e] == '.' && std::isdigit(static_cast<unsigned char>(s_[e + 1]))) {
      e = digits(e + 1);
      is_float = true;
    }
    if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      size_t p = e + 1;
      if (p < s_.size() && (s_[p] == '+' || s_[p] == '-')) ++p;
      if (p < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p]))) {
        e = digits(p);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = pos_; k < e; ++k)
      if (s_[k] != '_') text += s_[k];
    out_.push_back({is_float ? Tok::floating : Tok::integer, text, line, col});
    advance_to(e);
  }

  // Python's string escapes (Jinja unescapes literals as Python does); an unknown
  // escape keeps its backslash.
  void string(int line, int col) {
    const char q = s_[pos_];
    size_t p = pos_ + 1;
    std::string out;
    auto hex = [&](int n) -> char32_t {
      if (p + n > s_.size()) throw JinjaError(at(where_, line, col, "truncated escape in string literal"));
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        const char h = s_[p + k];
        if (!std::isxdigit(static_cast<unsigned char>(h)))
          throw JinjaError(at(where_, line, col, "bad escape in string literal"));
        v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      p += n;
      return v;
    };
    while (true) {
      if (p >= s_.size()) throw JinjaError(at(where_, line, col, "unclosed string literal"));
      const char c = s_[p];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) throw JinjaError(at(where_, line, col, "unclosed string literal"));
      const char e = s_[p + 1];
      p += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // a line continuation
        case 'x': out += utf8_encode({hex(2)}); break;
        case 'u': out += utf8_encode({hex(4)}); break;
        case 'U': out += utf8_encode({hex(8)}); break;
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            char32_t v = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++k) v = v * 8 + (s_[p++] - '0');
            out += utf8_encode({v});
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    out_.push_back({Tok::string, out, line, col});
    advance_to(p + 1);
  }

  std::string s_;
  const std::string& where_;
  LexOptions opt_;
  size_t pos_ = 0;
  int line_ = 1, col_ = 1;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(const std::string& source, const std::string& where, const LexOptions& opt) {
  return Lexer(source, where, opt).run();
}

}  // namespace teddy::jinja
