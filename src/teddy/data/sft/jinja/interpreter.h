#pragma once
// Renders a parsed template: Jinja's scoping (a for loop's body is its own scope, so
// `set` inside it does not leak out, which is why templates use namespace(); if
// blocks are not scopes), the loop variable, break / continue, macros, and Jinja's
// default Undefined (a missing name, key or index prints "" and is false; an
// attribute, subscript, call or arithmetic on it is an error naming it).
#include <ctime>
#include <functional>
#include <string>

#include "teddy/data/sft/jinja/ast.h"

namespace teddy::jinja {

struct RenderOptions {
  // strftime_now's clock. Unset: the system's, in local time (transformers:
  // datetime.now()); set: that instant in UTC, so a pinned clock renders alike everywhere.
  std::function<std::time_t()> now;
};

// Throws JinjaError "<where>:<line>:<col>: ..." for a failure at that place.
std::string render(const Body& body, const Dict& context, const std::string& where, const RenderOptions& opt);

}  // namespace teddy::jinja
