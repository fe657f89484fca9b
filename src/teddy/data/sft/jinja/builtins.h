#pragma once
// Jinja's built-in filters (`x | name(args)`), tests (`x is name(args)`), the methods
// of strings and dicts (`s.strip()`, `d.items()`) and the globals of transformers'
// chat-template environment (raise_exception, strftime_now, namespace, range).
#include <ctime>
#include <functional>
#include <string>

#include "teddy/data/sft/jinja/value.h"

namespace teddy::jinja {

// The parser refuses names these do not know; filters such as map and select apply
// other filters and tests by name.
bool is_filter(const std::string& name);
bool is_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& v, Args& args);
bool apply_test(const std::string& name, const Value& v, Args& args);
// raise_exception(msg), strftime_now(fmt) (`now`: RenderOptions::now), namespace(**kw),
// range([start,] stop[, step]).
Dict global_functions(std::function<std::time_t()> now);

// Argument i, or the keyword argument `name`, else `def`.
Value arg(const Args& a, size_t i, const std::string& name, const Value& def);

// Jinja's getattr on a value: a string's or dict's method, else a dict's key, else
// Undefined (an attribute of none or of a number is Undefined too, as in Jinja).
// Undefined itself has no attributes: the caller reports that.
Value attribute(const Value& obj, const std::string& name);

}  // namespace teddy::jinja
