#pragma once
// The values a Jinja template computes with, with Python's semantics (Jinja is
// Python's): none, booleans, 64-bit integers, floats, UTF-8 strings, lists and
// insertion-ordered dicts (shared, as Python objects are: a namespace set through one
// name is seen through another), functions, and Undefined (a missing variable, key or
// index: prints empty and is false, but using it further is an error).
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace teddy::jinja {

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // keys are strings (JSON's)
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};
using Function = std::function<Value(Args&)>;

class Value {
 public:
  enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, ns, function };

  Value() = default;  // Undefined
  static Value undefined(std::string what) {
    Value v;
    v.s_ = std::move(what);
    return v;
  }
  static Value none() { return Value(Kind::none); }
  Value(bool b) : kind_(Kind::boolean), i_(b) {}
  Value(int v) : kind_(Kind::integer), i_(v) {}
  Value(int64_t v) : kind_(Kind::integer), i_(v) {}
  Value(double v) : kind_(Kind::floating), f_(v) {}
  Value(std::string s) : kind_(Kind::string), s_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::string), s_(s) {}
  Value(List l) : kind_(Kind::list), list_(std::make_shared<List>(std::move(l))) {}
  Value(Dict d, bool is_namespace = false)
      : kind_(is_namespace ? Kind::ns : Kind::dict), dict_(std::make_shared<Dict>(std::move(d))) {}
  static Value function(std::string name, Function f) {
    Value v(Kind::function);
    v.s_ = std::move(name);
    v.fn_ = std::make_shared<Function>(std::move(f));
    return v;
  }
  static Value from_json(const nlohmann::json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_int() const { return kind_ == Kind::integer; }
  bool is_float() const { return kind_ == Kind::floating; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return kind_ == Kind::string; }
  bool is_list() const { return kind_ == Kind::list; }
  bool is_dict() const { return kind_ == Kind::dict; }
  bool is_namespace() const { return kind_ == Kind::ns; }
  bool is_function() const { return kind_ == Kind::function; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }  // integer or boolean
  double as_double() const { return is_float() ? f_ : static_cast<double>(i_); }
  const std::string& str() const { return s_; }  // a string; a function's or an Undefined's name
  List& list() const { return *list_; }
  Dict& dict() const { return *dict_; }  // a dict or a namespace
  const Function& fn() const { return *fn_; }

  // A dict's (or namespace's) entry, or nullptr.
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v) const;  // insert or replace (dicts, namespaces)

  bool truthy() const;
  // Python's str(): strings as they are, None, True/False, floats by repr, lists and
  // dicts by repr; Undefined prints "".
  std::string to_string() const;
  std::string repr() const;  // Python's repr()
  std::string type_name() const;  // "str", "int", "list", ... for messages
  // Python's json.dumps(ensure_ascii, indent (< 0: none; else that many spaces), separators,
  // sort_keys). Throws JinjaError for Undefined and functions.
  std::string to_json(bool ensure_ascii, int indent, const std::string& item_sep, const std::string& key_sep,
                      bool sort_keys) const;

  friend bool operator==(const Value& a, const Value& b);  // Python's ==

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::undefined;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> fn_;
};

// Python's float repr: the shortest text that reads back the same double ("1.0", "0.1", "1e-05").
std::string float_repr(double d);

// UTF-8 <-> code points (Python strings index, slice and count code points).
std::vector<char32_t> utf8_decode(const std::string& s);
std::string utf8_encode(const std::vector<char32_t>& cps);
bool is_python_space(char32_t c);  // str.strip()'s whitespace

}  // namespace teddy::jinja
