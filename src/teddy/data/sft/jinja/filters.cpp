// Jinja's built-in filters, those chat templates use, with Python's semantics.
#include <algorithm>
#include <cmath>
#include <map>

#include "teddy/data/sft/jinja/builtins.h"
#include "teddy/data/sft/jinja/error.h"

namespace teddy::jinja {

Value arg(const Args& a, size_t i, const std::string& name, const Value& def) {
  if (i < a.pos.size()) return a.pos[i];
  for (const auto& [k, v] : a.kw)
    if (k == name) return v;
  return def;
}

namespace {

using Filter = Value (*)(const Value&, Args&);

[[noreturn]] void fail(const std::string& filter, const std::string& msg) { throw JinjaError(filter + ": " + msg); }

const Value& need_string(const std::string& filter, const Value& v) {
  if (!v.is_string()) fail(filter, "expected a string, got " + v.type_name());
  return v;
}

// The items a filter iterates: a list's elements, a dict's keys, a string's characters.
List items_of(const std::string& filter, const Value& v) {
  if (v.is_list()) return v.list();
  if (v.is_dict()) {
    List out;
    for (const auto& [k, _] : v.dict()) out.emplace_back(k);
    return out;
  }
  if (v.is_string()) {
    List out;
    for (char32_t c : utf8_decode(v.str())) out.emplace_back(utf8_encode({c}));
    return out;
  }
  if (v.is_undefined()) return {};
  fail(filter, "'" + v.type_name() + "' object is not iterable");
}

std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::vector<char32_t> cps = utf8_decode(s);
  std::vector<char32_t> set;
  if (chars.is_string()) set = utf8_decode(chars.str());
  auto strip_me = [&](char32_t c) {
    return chars.is_string() ? std::find(set.begin(), set.end(), c) != set.end() : is_python_space(c);
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_me(cps[b])) ++b;
  if (right)
    while (e > b && strip_me(cps[e - 1])) --e;
  return utf8_encode(std::vector<char32_t>(cps.begin() + b, cps.begin() + e));
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(c));
  return s;
}

Value f_trim(const Value& v, Args& a) { return strip(v.to_string(), arg(a, 0, "chars", Value::none()), true, true); }
Value f_length(const Value& v, Args&) {
  if (v.is_string()) return static_cast<int64_t>(utf8_decode(v.str()).size());
  if (v.is_list()) return static_cast<int64_t>(v.list().size());
  if (v.is_dict() || v.is_namespace()) return static_cast<int64_t>(v.dict().size());
  if (v.is_undefined()) return 0;
  fail("length", "object of type '" + v.type_name() + "' has no len()");
}
Value f_tojson(const Value& v, Args& a) {
  const Value& indent = arg(a, 99, "indent", Value::none());
  const Value& ascii = arg(a, 99, "ensure_ascii", Value(false));
  const Value& seps = arg(a, 99, "separators", Value::none());
  const Value& sort = arg(a, 99, "sort_keys", Value(false));
  if (!a.pos.empty()) fail("tojson", "takes keyword arguments only (indent=, ensure_ascii=, separators=, sort_keys=)");
  if (!indent.is_none() && !indent.is_int()) fail("tojson", "indent must be an integer");
  std::string item = indent.is_none() ? ", " : ",", key = ": ";
  if (!seps.is_none()) {
    if (!seps.is_list() || seps.list().size() != 2 || !seps.list()[0].is_string() || !seps.list()[1].is_string())
      fail("tojson", "separators must be a pair of strings");
    item = seps.list()[0].str();
    key = seps.list()[1].str();
  }
  return v.to_json(ascii.truthy(), indent.is_none() ? -1 : static_cast<int>(indent.as_int()), item, key, sort.truthy());
}
Value f_upper(const Value& v, Args&) { return ascii_map(v.to_string(), [](int c) { return std::toupper(c); }); }
Value f_lower(const Value& v, Args&) { return ascii_map(v.to_string(), [](int c) { return std::tolower(c); }); }
Value f_capitalize(const Value& v, Args&) {
  std::string s = ascii_map(v.to_string(), [](int c) { return std::tolower(c); });
  if (!s.empty() && static_cast<unsigned char>(s[0]) < 0x80) s[0] = static_cast<char>(std::toupper(s[0]));
  return s;
}
Value f_title(const Value& v, Args&) {
  std::string s = v.to_string();
  bool prev_letter = false;  // Python: a letter after a non-letter starts a word
  for (char& c : s) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80;
    if (letter) c = static_cast<char>(prev_letter ? std::tolower(c) : std::toupper(c));
    prev_letter = letter || static_cast<unsigned char>(c) >= 0x80;
  }
  return s;
}
Value f_default(const Value& v, Args& a) {
  const bool boolean = arg(a, 1, "boolean", Value(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", Value(""));
  return v;
}
Value f_first(const Value& v, Args&) {
  const List l = items_of("first", v);
  return l.empty() ? Value::undefined("first of an empty sequence") : l.front();
}
Value f_last(const Value& v, Args&) {
  const List l = items_of("last", v);
  return l.empty() ? Value::undefined("last of an empty sequence") : l.back();
}
Value f_join(const Value& v, Args& a) {
  const std::string sep = arg(a, 0, "d", Value("")).to_string();
  const Value& attr = arg(a, 1, "attribute", Value::none());
  std::string out;
  bool first = true;
  for (const Value& e : items_of("join", v)) {
    out += (first ? "" : sep) + (attr.is_none() ? e : attribute(e, attr.to_string())).to_string();
    first = false;
  }
  return out;
}
Value f_replace(const Value& v, Args& a) {
  const std::vector<char32_t> s = utf8_decode(v.to_string());
  const std::vector<char32_t> old = utf8_decode(need_string("replace", arg(a, 0, "old", Value::none())).str());
  const std::vector<char32_t> neu = utf8_decode(need_string("replace", arg(a, 1, "new", Value::none())).str());
  const Value& count = arg(a, 2, "count", Value::none());
  int64_t left = count.is_none() ? -1 : count.as_int();
  std::vector<char32_t> out;
  size_t i = 0;
  if (old.empty()) {  // Python inserts `new` before every character and at the end
    for (; i <= s.size(); ++i) {
      if (left != 0) {
        out.insert(out.end(), neu.begin(), neu.end());
        if (left > 0) --left;
      }
      if (i < s.size()) out.push_back(s[i]);
    }
    return utf8_encode(out);
  }
  while (i < s.size()) {
    if (left != 0 && i + old.size() <= s.size() && std::equal(old.begin(), old.end(), s.begin() + i)) {
      out.insert(out.end(), neu.begin(), neu.end());
      i += old.size();
      if (left > 0) --left;
    } else {
      out.push_back(s[i++]);
    }
  }
  return utf8_encode(out);
}
Value f_string(const Value& v, Args&) { return v.to_string(); }
Value f_int(const Value& v, Args& a) {
  const Value& def = arg(a, 0, "default", Value(0));
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) return std::isfinite(v.as_double()) ? Value(static_cast<int64_t>(std::trunc(v.as_double()))) : def;
  if (v.is_string()) {
    const std::string s = strip(v.str(), Value::none(), true, true);
    try {
      size_t n = 0;
      const int64_t i = std::stoll(s, &n, 10);
      if (n == s.size()) return i;
      const double d = std::stod(s, &n);
      if (n == s.size() && std::isfinite(d)) return static_cast<int64_t>(std::trunc(d));
    } catch (const std::exception&) {
    }
  }
  return def;
}
Value f_float(const Value& v, Args& a) {
  const Value& def = arg(a, 0, "default", Value(0.0));
  if (v.is_number()) return v.as_double();
  if (v.is_string()) {
    try {
      size_t n = 0;
      const std::string s = strip(v.str(), Value::none(), true, true);
      const double d = std::stod(s, &n);
      if (n == s.size()) return d;
    } catch (const std::exception&) {
    }
  }
  return def;
}
Value f_items(const Value& v, Args&) {
  if (v.is_undefined()) return List{};
  if (!v.is_dict()) fail("items", "expected a mapping, got " + v.type_name());
  List out;
  for (const auto& [k, e] : v.dict()) out.push_back(List{Value(k), e});
  return out;
}
Value f_list(const Value& v, Args&) { return items_of("list", v); }
Value f_reverse(const Value& v, Args&) {
  if (v.is_string()) {
    std::vector<char32_t> c = utf8_decode(v.str());
    std::reverse(c.begin(), c.end());
    return utf8_encode(c);
  }
  List l = items_of("reverse", v);
  std::reverse(l.begin(), l.end());
  return l;
}
Value f_abs(const Value& v, Args&) {
  if (v.is_float()) return std::fabs(v.as_double());
  if (v.is_number()) return static_cast<int64_t>(std::llabs(v.as_int()));
  fail("abs", "expected a number, got " + v.type_name());
}
Value f_safe(const Value& v, Args&) { return v; }

// select / reject: by a test (args after its name), or by truthiness.
Value select_impl(const char* filter, const Value& v, Args& a, bool keep, bool by_attr) {
  size_t at = 0;
  std::string attr;
  if (by_attr) {
    if (a.pos.empty()) fail(filter, "needs an attribute name");
    attr = a.pos[at++].to_string();
  }
  std::string test;
  if (at < a.pos.size()) test = need_string(filter, a.pos[at++]).str();
  if (!test.empty() && !is_test(test)) fail(filter, "unsupported test '" + test + "'");
  Args targs;
  targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(at), a.pos.end());
  List out;
  for (const Value& e : items_of(filter, v)) {
    Value x = e;
    if (by_attr)
      for (size_t p = 0, q; p <= attr.size(); p = q + 1) {  // dotted: "function.name"
        q = attr.find('.', p);
        if (q == std::string::npos) q = attr.size();
        x = x.is_undefined() ? x : attribute(x, attr.substr(p, q - p));
      }
    const bool pass = test.empty() ? x.truthy() : apply_test(test, x, targs);
    if (pass == keep) out.push_back(e);
  }
  return out;
}
Value f_select(const Value& v, Args& a) { return select_impl("select", v, a, true, false); }
Value f_reject(const Value& v, Args& a) { return select_impl("reject", v, a, false, false); }
Value f_selectattr(const Value& v, Args& a) { return select_impl("selectattr", v, a, true, true); }
Value f_rejectattr(const Value& v, Args& a) { return select_impl("rejectattr", v, a, false, true); }
Value f_map(const Value& v, Args& a) {
  List out;
  const Value& attr = arg(a, 99, "attribute", Value::none());
  if (!attr.is_none()) {
    const Value& def = arg(a, 99, "default", Value());
    for (const Value& e : items_of("map", v)) {
      Value x = attribute(e, attr.to_string());
      out.push_back(x.is_undefined() && !def.is_undefined() ? def : x);
    }
    return out;
  }
  if (a.pos.empty()) fail("map", "needs a filter name or attribute=");
  const std::string name = need_string("map", a.pos[0]).str();
  if (!is_filter(name)) fail("map", "unsupported filter '" + name + "'");
  Args fargs;
  fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
  fargs.kw = a.kw;
  for (const Value& e : items_of("map", v)) {
    Args copy = fargs;
    out.push_back(apply_filter(name, e, copy));
  }
  return out;
}

const std::map<std::string, Filter>& table() {
  static const std::map<std::string, Filter> t = {
      {"trim", f_trim},     {"length", f_length},   {"count", f_length},     {"tojson", f_tojson},
      {"upper", f_upper},   {"lower", f_lower},     {"capitalize", f_capitalize}, {"title", f_title},
      {"default", f_default}, {"d", f_default},     {"first", f_first},      {"last", f_last},
      {"join", f_join},     {"replace", f_replace}, {"string", f_string},    {"int", f_int},
      {"float", f_float},   {"items", f_items},     {"list", f_list},        {"reverse", f_reverse},
      {"abs", f_abs},       {"safe", f_safe},       {"select", f_select},    {"reject", f_reject},
      {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map},
  };
  return t;
}

}  // namespace

bool is_filter(const std::string& name) { return table().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& v, Args& args) {
  const auto it = table().find(name);
  if (it == table().end()) throw JinjaError("unsupported filter '" + name + "'");
  return it->second(v, args);
}

}  // namespace teddy::jinja
