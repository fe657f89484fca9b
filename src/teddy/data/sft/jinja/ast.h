#pragma once
// The syntax tree of a parsed template: expressions and statements, each a tagged node
// with its source line and column (for error messages).
#include <memory>
#include <string>
#include <vector>

#include "teddy/data/sft/jinja/value.h"

namespace teddy::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,   // value
    name,      // name
    list,      // kids: items
    tuple,     // kids: items
    dict,      // kids: key, value, key, value, ...
    attr,      // kids[0].name
    index,     // kids[0][kids[1]]
    slice,     // kids[0][kids[1]:kids[2]:kids[3]] (null kids: omitted)
    call,      // kids[0](kids[1..], kw = kw_kids)
    filter,    // kids[0] | name(kids[1..], kw)
    test,      // kids[0] is [not] name(kids[1..], kw); negated
    unary,     // name ("-", "+", "not") kids[0]
    binary,    // kids[0] name kids[1]: + - * / // % ** ~ and or
    compare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ... (== != < <= > >= in "not in")
    cond,      // kids[1] if kids[0] else kids[2] (kids[2] null: Undefined)
  };
  Kind kind;
  int line = 0, col = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> kids;
  std::vector<std::string> kw_names;  // call / filter / test keyword arguments: names of kw_kids
  std::vector<ExprPtr> kw_kids;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    text,      // text
    output,    // {{ expr }}
    if_,       // conds[i] -> bodies[i]; else_body
    for_,      // for targets in expr [if cond]: body; else_body
    set,       // set targets = expr; or set target.attr = expr (attr non-empty)
    set_block, // {% set name %}body{% endset %}
    macro,     // {% macro name(params = defaults) %}body{% endmacro %}
    break_,
    continue_,
  };
  Kind kind;
  int line = 0, col = 0;
  std::string text;
  ExprPtr expr;                       // output, for (iterable), set (value)
  ExprPtr cond;                       // for's filter
  std::vector<ExprPtr> conds;         // if / elif
  std::vector<Body> bodies;           // if / elif
  Body body, else_body;
  std::vector<std::string> targets;   // for / set names; macro parameters
  std::string attr;                   // set ns.attr
  std::vector<ExprPtr> defaults;      // macro parameter defaults (null: required)
};

}  // namespace teddy::jinja
