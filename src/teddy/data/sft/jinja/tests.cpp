// Jinja's built-in tests (`x is name`), with Python's notion of the types.
#include <map>

#include "teddy/data/sft/jinja/builtins.h"
#include "teddy/data/sft/jinja/error.h"

namespace teddy::jinja {

namespace {

using Test = bool (*)(const Value&, Args&);

const Value& other(const Args& a, const char* test) {
  if (a.pos.empty()) throw JinjaError(std::string("test '") + test + "' needs an argument");
  return a.pos[0];
}

// Python's ordering for the comparison tests: numbers with numbers, strings with strings.
int order(const Value& a, const Value& b, const char* test) {
  if (a.is_number() && b.is_number()) return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
  if (a.is_string() && b.is_string()) return a.str().compare(b.str());
  throw JinjaError(std::string("test '") + test + "': cannot order " + a.type_name() + " and " + b.type_name());
}

bool t_defined(const Value& v, Args&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, Args&) { return v.is_undefined(); }
bool t_none(const Value& v, Args&) { return v.is_none(); }
bool t_boolean(const Value& v, Args&) { return v.is_bool(); }
bool t_true(const Value& v, Args&) { return v.is_bool() && v.as_bool(); }
bool t_false(const Value& v, Args&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(const Value& v, Args&) { return v.is_int(); }
bool t_float(const Value& v, Args&) { return v.is_float(); }
bool t_number(const Value& v, Args&) { return v.is_number(); }
bool t_string(const Value& v, Args&) { return v.is_string(); }
bool t_mapping(const Value& v, Args&) { return v.is_dict(); }
bool t_iterable(const Value& v, Args&) { return v.is_string() || v.is_list() || v.is_dict(); }
bool t_sequence(const Value& v, Args&) { return v.is_string() || v.is_list() || v.is_dict(); }
bool t_callable(const Value& v, Args&) { return v.is_function(); }
bool t_odd(const Value& v, Args&) {
  if (!v.is_int()) throw JinjaError("test 'odd': expected an integer, got " + v.type_name());
  return v.as_int() % 2 != 0;
}
bool t_even(const Value& v, Args& a) { return !t_odd(v, a); }
bool t_divisibleby(const Value& v, Args& a) {
  const Value& n = other(a, "divisibleby");
  if (!v.is_int() || !n.is_int() || n.as_int() == 0) throw JinjaError("test 'divisibleby': expected non-zero integers");
  return v.as_int() % n.as_int() == 0;
}
bool t_eq(const Value& v, Args& a) { return v == other(a, "eq"); }
bool t_ne(const Value& v, Args& a) { return !(v == other(a, "ne")); }
bool t_lt(const Value& v, Args& a) { return order(v, other(a, "lt"), "lt") < 0; }
bool t_le(const Value& v, Args& a) { return order(v, other(a, "le"), "le") <= 0; }
bool t_gt(const Value& v, Args& a) { return order(v, other(a, "gt"), "gt") > 0; }
bool t_ge(const Value& v, Args& a) { return order(v, other(a, "ge"), "ge") >= 0; }
bool t_in(const Value& v, Args& a) {
  const Value& c = other(a, "in");
  if (c.is_string() && v.is_string()) return c.str().find(v.str()) != std::string::npos;
  if (c.is_list()) {
    for (const Value& e : c.list())
      if (e == v) return true;
    return false;
  }
  if (c.is_dict()) return v.is_string() && c.find(v.str()) != nullptr;
  throw JinjaError("test 'in': argument of type '" + c.type_name() + "' is not a container");
}
bool t_lower(const Value& v, Args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.str()) {
    if (std::isupper(static_cast<unsigned char>(c))) return false;
    cased |= std::islower(static_cast<unsigned char>(c)) != 0;
  }
  return cased;
}
bool t_upper(const Value& v, Args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.str()) {
    if (std::islower(static_cast<unsigned char>(c))) return false;
    cased |= std::isupper(static_cast<unsigned char>(c)) != 0;
  }
  return cased;
}

const std::map<std::string, Test>& table() {
  static const std::map<std::string, Test> t = {
      {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},         {"boolean", t_boolean},
      {"true", t_true},         {"false", t_false},         {"integer", t_integer},   {"float", t_float},
      {"number", t_number},     {"string", t_string},       {"mapping", t_mapping},   {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable},   {"odd", t_odd},           {"even", t_even},
      {"divisibleby", t_divisibleby}, {"eq", t_eq},         {"equalto", t_eq},        {"==", t_eq},
      {"ne", t_ne},             {"!=", t_ne},               {"lt", t_lt},             {"lessthan", t_lt},
      {"<", t_lt},              {"le", t_le},               {"<=", t_le},             {"gt", t_gt},
      {"greaterthan", t_gt},    {">", t_gt},                {"ge", t_ge},             {">=", t_ge},
      {"in", t_in},             {"lower", t_lower},         {"upper", t_upper},
  };
  return t;
}

}  // namespace

bool is_test(const std::string& name) { return table().count(name) != 0; }

bool apply_test(const std::string& name, const Value& v, Args& args) {
  const auto it = table().find(name);
  if (it == table().end()) throw JinjaError("unsupported test '" + name + "'");
  return it->second(v, args);
}

}  // namespace teddy::jinja
