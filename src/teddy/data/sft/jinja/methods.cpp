// Attribute access and the methods of strings and dicts that chat templates call
// (Python's str and dict methods), plus the globals of transformers' environment.
#include <algorithm>
#include <ctime>

#include "teddy/data/sft/jinja/builtins.h"
#include "teddy/data/sft/jinja/error.h"

namespace teddy::jinja {

namespace {

using Cps = std::vector<char32_t>;

[[noreturn]] void fail(const std::string& m, const std::string& msg) { throw JinjaError(m + "(): " + msg); }

std::string str_arg(const Args& a, size_t i, const char* name, const char* method) {
  const Value& v = arg(a, i, name, Value());
  if (!v.is_string()) fail(method, std::string("argument '") + name + "' must be a string");
  return v.str();
}

bool starts(const Cps& s, const Cps& p, size_t at) {
  return at + p.size() <= s.size() && std::equal(p.begin(), p.end(), s.begin() + static_cast<std::ptrdiff_t>(at));
}

// str.split(sep=None, maxsplit=-1)
Value split(const std::string& str, Args& a) {
  const Value& sep = arg(a, 0, "sep", Value::none());
  const Value& maxv = arg(a, 1, "maxsplit", Value(-1));
  int64_t max = maxv.as_int();
  const Cps s = utf8_decode(str);
  List out;
  if (sep.is_none()) {  // runs of whitespace, no empty pieces
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_python_space(s[i])) ++i;
      if (i == s.size()) break;
      if (max == 0) {
        size_t e = s.size();
        while (e > i && is_python_space(s[e - 1])) --e;
        out.emplace_back(utf8_encode(Cps(s.begin() + i, s.begin() + e)));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_python_space(s[j])) ++j;
      out.emplace_back(utf8_encode(Cps(s.begin() + i, s.begin() + j)));
      if (max > 0) --max;
      i = j;
    }
    return out;
  }
  if (!sep.is_string() || sep.str().empty()) fail("split", "empty or non-string separator");
  const Cps p = utf8_decode(sep.str());
  size_t from = 0;
  for (size_t i = 0; i + p.size() <= s.size();) {
    if (max != 0 && starts(s, p, i)) {
      out.emplace_back(utf8_encode(Cps(s.begin() + from, s.begin() + i)));
      i += p.size();
      from = i;
      if (max > 0) --max;
    } else {
      ++i;
    }
  }
  out.emplace_back(utf8_encode(Cps(s.begin() + from, s.end())));
  return out;
}

bool affix(const std::string& s, const Value& p, bool prefix, const char* method) {
  auto one = [&](const Value& x) {
    if (!x.is_string()) fail(method, "expected a string or a tuple of strings");
    const std::string& t = x.str();
    return t.size() <= s.size() && (prefix ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0);
  };
  if (p.is_list()) return std::any_of(p.list().begin(), p.list().end(), one);
  return one(p);
}

Value string_method(const std::string& s, const std::string& name) {
  auto bind = [&](Function f) { return Value::function("str." + name, std::move(f)); };
  auto filter = [&](const std::string& f) {
    return bind([s, f](Args& a) { return apply_filter(f, Value(s), a); });
  };
  auto stripper = [&](bool l, bool r) {
    return bind([s, l, r, name](Args& a) {
      const Value& chars = arg(a, 0, "chars", Value::none());
      if (!chars.is_none() && !chars.is_string()) fail(name, "chars must be a string");
      const Cps c = utf8_decode(s);
      Cps set = chars.is_string() ? utf8_decode(chars.str()) : Cps{};
      auto hit = [&](char32_t x) { return chars.is_string() ? std::find(set.begin(), set.end(), x) != set.end() : is_python_space(x); };
      size_t b = 0, e = c.size();
      if (l)
        while (b < e && hit(c[b])) ++b;
      if (r)
        while (e > b && hit(c[e - 1])) --e;
      return Value(utf8_encode(Cps(c.begin() + b, c.begin() + e)));
    });
  };
  if (name == "strip") return stripper(true, true);
  if (name == "lstrip") return stripper(true, false);
  if (name == "rstrip") return stripper(false, true);
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") return filter(name);
  if (name == "replace") return filter("replace");
  if (name == "startswith" || name == "endswith") {
    const bool prefix = name == "startswith";
    return bind([s, prefix](Args& a) { return Value(affix(s, arg(a, 0, "prefix", Value()), prefix, prefix ? "startswith" : "endswith")); });
  }
  if (name == "split") return bind([s](Args& a) { return split(s, a); });
  if (name == "count") {
    return bind([s](Args& a) {
      const std::string sub = str_arg(a, 0, "sub", "count");
      if (sub.empty()) return Value(static_cast<int64_t>(utf8_decode(s).size() + 1));
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value(n);
    });
  }
  return Value::undefined("str has no attribute '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name) {
  auto bind = [&](Function f) { return Value::function("dict." + name, std::move(f)); };
  if (name == "get")
    return bind([d](Args& a) {
      const Value& k = arg(a, 0, "key", Value());
      const Value* v = k.is_string() ? d.find(k.str()) : nullptr;
      return v ? *v : arg(a, 1, "default", Value::none());
    });
  if (name == "items") return bind([d](Args& a) { return apply_filter("items", d, a); });
  if (name == "keys") return bind([d](Args& a) { return apply_filter("list", d, a); });
  if (name == "values")
    return bind([d](Args&) {
      List out;
      for (const auto& [_, v] : d.dict()) out.push_back(v);
      return Value(std::move(out));
    });
  return Value();
}

}  // namespace

Value attribute(const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj.str(), name);
  if (obj.is_dict()) {
    Value m = dict_method(obj, name);
    if (!m.is_undefined()) return m;
    if (const Value* v = obj.find(name)) return *v;
    return Value::undefined("dict object has no attribute '" + name + "'");
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.find(name)) return *v;
    return Value::undefined("namespace has no attribute '" + name + "'");
  }
  return Value::undefined(obj.type_name() + " object has no attribute '" + name + "'");
}

Dict global_functions(std::function<std::time_t()> now) {
  Dict g;
  g.emplace_back("raise_exception", Value::function("raise_exception", [](Args& a) -> Value {
                   throw JinjaError("the chat template raised an error: " + arg(a, 0, "message", Value("")).to_string());
                 }));
  g.emplace_back("strftime_now", Value::function("strftime_now", [now](Args& a) -> Value {
                   const Value& fmt = arg(a, 0, "format", Value());
                   if (!fmt.is_string()) throw JinjaError("strftime_now(): expected a format string");
                   const std::time_t t = now ? now() : std::time(nullptr);
                   std::tm tm{};
                   if (now) gmtime_r(&t, &tm);  // a pinned instant: the same date in every time zone
                   else localtime_r(&t, &tm);   // transformers: datetime.now().strftime(format)
                   char buf[256];
                   const size_t n = std::strftime(buf, sizeof buf, fmt.str().c_str(), &tm);
                   return std::string(buf, n);
                 }));
  g.emplace_back("namespace", Value::function("namespace", [](Args& a) -> Value {
                   Dict d;
                   for (const Value& p : a.pos) {  // namespace(dict) copies its items
                     if (!p.is_dict()) throw JinjaError("namespace(): positional arguments must be mappings");
                     for (const auto& kv : p.dict()) d.push_back(kv);
                   }
                   Value ns(std::move(d), true);
                   for (const auto& [k, v] : a.kw) ns.set(k, v);
                   return ns;
                 }));
  g.emplace_back("range", Value::function("range", [](Args& a) -> Value {
                   int64_t start = 0, stop = 0, step = 1;
                   for (const Value& v : a.pos)
                     if (!v.is_int()) throw JinjaError("range(): expected integers");
                   if (a.pos.size() == 1) stop = a.pos[0].as_int();
                   else if (a.pos.size() >= 2) {
                     start = a.pos[0].as_int();
                     stop = a.pos[1].as_int();
                     if (a.pos.size() == 3) step = a.pos[2].as_int();
                   } else {
                     throw JinjaError("range(): expected 1 to 3 integers");
                   }
                   if (step == 0) throw JinjaError("range(): step must not be zero");
                   List out;
                   for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                     out.emplace_back(i);
                     if (out.size() > 1000000) throw JinjaError("range(): more than a million items");
                   }
                   return out;
                 }));
  return g;
}

}  // namespace teddy::jinja
