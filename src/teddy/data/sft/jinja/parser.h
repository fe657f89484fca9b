#pragma once
// The Jinja parser: tokens into a statement tree. Statements: if / elif / else, for
// (with tuple targets, an inline `if` filter and else), set (names, `ns.attr`, and the
// block form), macro, break / continue (transformers loads jinja2.ext.loopcontrols).
// Expressions with Jinja's precedence: `x if c else y`, or, and, not, comparisons
// (chained; in, not in), + -, ~, * / // %, **, unary - +, filters (`|`) and tests
// (`is [not]`), then attribute, subscript, slice and call postfixes on literals
// (strings, numbers, true/false/none, lists, tuples, dicts), names and parentheses.
// Anything else (extends, include, import, call blocks, raw, filter blocks, with,
// generation, unknown filters and tests) is refused by name with its line and column.
#include <string>
#include <vector>

#include "teddy/data/sft/jinja/ast.h"
#include "teddy/data/sft/jinja/lexer.h"

namespace teddy::jinja {

// Throws JinjaError "<where>:<line>:<col>: ...".
Body parse(const std::vector<Token>& tokens, const std::string& where);

}  // namespace teddy::jinja
