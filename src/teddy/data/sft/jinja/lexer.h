#pragma once
// The Jinja lexer: template text into tokens, with the whitespace rules of the
// environment Hugging Face renders chat templates in (transformers: trim_blocks and
// lstrip_blocks on; Jinja's defaults otherwise):
//   - newlines are normalised to "\n" and one trailing newline of the template dropped;
//   - `{%- ` / `{{- ` / `{#- ` strip the whitespace before the tag, ` -%}` / ` -}}` / ` -#}` after it;
//   - trim_blocks: the first newline after a block or comment tag (`%}`, `#}`) is removed;
//   - lstrip_blocks: spaces and tabs from the start of a line to a block or comment tag
//     are removed; `{%+` / `+%}` turn either off for that tag.
#include <string>
#include <vector>

namespace teddy::jinja {

enum class Tok {
  text,        // template text outside tags (value)
  var_begin,   // {{
  var_end,     // }}
  block_begin, // {%
  block_end,   // %}
  name,        // identifiers and keywords (value)
  string,      // a string literal, escapes resolved (value)
  integer,     // (value: the digits)
  floating,    // (value: the text)
  op,          // punctuation and operators (value)
  eof,
};

struct Token {
  Tok kind;
  std::string value;
  int line = 1, col = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws JinjaError "<where>:<line>:<col>: ..." for an unclosed tag, comment or string,
// or a character that starts no token.
std::vector<Token> lex(const std::string& source, const std::string& where, const LexOptions& opt = {});

}  // namespace teddy::jinja
