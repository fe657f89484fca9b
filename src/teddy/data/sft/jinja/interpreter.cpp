#include "teddy/data/sft/jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "teddy/data/sft/jinja/builtins.h"
#include "teddy/data/sft/jinja/error.h"

namespace teddy::jinja {

namespace {

// A JinjaError that already names its line and column.
class Located : public JinjaError {
 public:
  using JinjaError::JinjaError;
};

using Frame = std::map<std::string, Value>;

std::string undefined_text(const Value& v) { return v.str().empty() ? "a value is undefined" : v.str(); }

class Interpreter {
 public:
  Interpreter(const std::string& where, const RenderOptions& opt) : where_(where), opt_(opt) {}

  std::string run(const Body& body, const Dict& context) {
    frames_.emplace_back();
    for (auto& [k, v] : global_functions(opt_.now)) frames_.back()[k] = v;
    frames_.emplace_back();
    for (const auto& [k, v] : context) frames_.back()[k] = v;
    frames_.emplace_back();  // the template's own `set`s
    std::string out;
    exec(body, out);
    return out;
  }

 private:
  enum class Flow { normal, break_, continue_ };

  [[noreturn]] void fail(int line, int col, const std::string& msg) const { throw Located(at(where_, line, col, msg)); }

  Value lookup(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      const auto it = f->find(name);
      if (it != f->end()) return it->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      const Flow f = exec(*s, out);
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::text: out += s.text; return Flow::normal;
      case Stmt::Kind::output: out += eval(*s.expr).to_string(); return Flow::normal;
      case Stmt::Kind::if_:
        for (size_t i = 0; i < s.conds.size(); ++i)
          if (eval(*s.conds[i]).truthy()) return exec(s.bodies[i], out);
        return exec(s.else_body, out);
      case Stmt::Kind::for_: return exec_for(s, out);
      case Stmt::Kind::set: {
        const Value v = eval(*s.expr);
        if (!s.attr.empty()) {
          const Value ns = lookup(s.targets[0]);
          if (!ns.is_namespace()) fail(s.line, s.col, "cannot set attribute '" + s.attr + "' on '" + s.targets[0] + "' (not a namespace)");
          ns.set(s.attr, v);
        } else {
          assign(s.targets, v, s.line, s.col);
        }
        return Flow::normal;
      }
      case Stmt::Kind::set_block: {
        std::string captured;
        exec(s.body, captured);
        frames_.back()[s.targets[0]] = Value(captured);
        return Flow::normal;
      }
      case Stmt::Kind::macro: frames_.back()[s.text] = macro(s); return Flow::normal;
      case Stmt::Kind::break_: return Flow::break_;
      case Stmt::Kind::continue_: return Flow::continue_;
    }
    return Flow::normal;
  }

  void assign(const std::vector<std::string>& targets, const Value& v, int line, int col) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = v;
      return;
    }
    if (!v.is_list() || v.list().size() != targets.size())
      fail(line, col, "cannot unpack " + v.type_name() + " into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) frames_.back()[targets[i]] = v.list()[i];
  }

  List iterate(const Value& v, int line, int col) {
    if (v.is_list()) return v.list();
    if (v.is_undefined()) return {};
    if (v.is_dict() || v.is_string()) {
      Args none;
      return apply_filter("list", v, none).list();
    }
    fail(line, col, "'" + v.type_name() + "' object is not iterable");
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    List items = iterate(eval(*s.expr), s.expr->line, s.expr->col);
    if (s.cond) {  // the inline filter: loop.index and loop.length count what passes
      List kept;
      for (const Value& it : items) {
        frames_.emplace_back();
        assign(s.targets, it, s.line, s.col);
        const bool pass = eval(*s.cond).truthy();
        frames_.pop_back();
        if (pass) kept.push_back(it);
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      frames_.emplace_back();
      assign(s.targets, items[i], s.line, s.col);
      Dict loop = {{"index", Value(i + 1)},
                   {"index0", Value(i)},
                   {"revindex", Value(n - i)},
                   {"revindex0", Value(n - i - 1)},
                   {"first", Value(i == 0)},
                   {"last", Value(i == n - 1)},
                   {"length", Value(n)},
                   {"depth", Value(1)},
                   {"depth0", Value(0)},
                   {"previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
                   {"nextitem", i + 1 < n ? items[i + 1] : Value::undefined("there is no next item")}};
      frames_.back()["loop"] = Value(std::move(loop));
      const Flow f = exec(s.body, out);
      frames_.pop_back();
      if (f == Flow::break_) break;
    }
    if (n == 0) return exec(s.else_body, out);
    return Flow::normal;
  }

  Value macro(const Stmt& s) {
    return Value::function(s.text, [this, &s](Args& a) -> Value {
      // A macro sees the template's variables and its own parameters, not its caller's locals.
      std::vector<Frame> saved(frames_.begin() + 3, frames_.end());
      frames_.resize(3);
      frames_.emplace_back();
      if (a.pos.size() > s.targets.size()) fail(s.line, s.col, "macro '" + s.text + "' takes " + std::to_string(s.targets.size()) + " arguments");
      for (size_t i = 0; i < s.targets.size(); ++i) {
        Value v = i < a.pos.size() ? a.pos[i] : s.defaults[i] ? eval(*s.defaults[i]) : Value::undefined("'" + s.targets[i] + "' is undefined");
        frames_.back()[s.targets[i]] = v;
      }
      for (const auto& [k, v] : a.kw) {
        if (std::find(s.targets.begin(), s.targets.end(), k) == s.targets.end())
          fail(s.line, s.col, "macro '" + s.text + "' has no parameter '" + k + "'");
        frames_.back()[k] = v;
      }
      std::string out;
      exec(s.body, out);
      frames_.resize(3);
      frames_.insert(frames_.end(), saved.begin(), saved.end());
      return Value(out);
    });
  }

  Value eval(const Expr& e) {
    try {
      return eval_inner(e);
    } catch (const Located&) {
      throw;
    } catch (const JinjaError& err) {
      fail(e.line, e.col, err.what());
    }
  }

  void need_defined(const Value& v, const Expr& e) {
    if (v.is_undefined()) fail(e.line, e.col, undefined_text(v));
  }

  Args call_args(const Expr& e, size_t first) {
    Args a;
    for (size_t i = first; i < e.kids.size(); ++i) a.pos.push_back(eval(*e.kids[i]));
    for (size_t i = 0; i < e.kw_kids.size(); ++i) a.kw.emplace_back(e.kw_names[i], eval(*e.kw_kids[i]));
    return a;
  }

  Value eval_inner(const Expr& e) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::literal: return e.value;
      case K::name: return lookup(e.name);
      case K::list:
      case K::tuple: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k));
        return l;
      }
      case K::dict: {
        Value d{Dict{}};
        for (size_t i = 0; i < e.kids.size(); i += 2) {
          const Value k = eval(*e.kids[i]);
          if (!k.is_string()) fail(e.kids[i]->line, e.kids[i]->col, "dict keys must be strings (got " + k.type_name() + ")");
          d.set(k.str(), eval(*e.kids[i + 1]));
        }
        return d;
      }
      case K::attr: {
        const Value obj = eval(*e.kids[0]);
        need_defined(obj, *e.kids[0]);
        return attribute(obj, e.name);
      }
      case K::index: return index(eval(*e.kids[0]), eval(*e.kids[1]), e);
      case K::slice: return slice(e);
      case K::call: {
        const Value f = eval(*e.kids[0]);
        need_defined(f, *e.kids[0]);
        if (!f.is_function()) fail(e.line, e.col, "'" + f.type_name() + "' object is not callable");
        Args a = call_args(e, 1);
        return f.fn()(a);
      }
      case K::filter: {
        const Value v = eval(*e.kids[0]);
        Args a = call_args(e, 1);
        return apply_filter(e.name, v, a);
      }
      case K::test: {
        const Value v = eval(*e.kids[0]);
        Args a = call_args(e, 1);
        return apply_test(e.name, v, a) != e.negated;
      }
      case K::unary: {
        const Value v = eval(*e.kids[0]);
        if (e.name == "not") return !v.truthy();
        need_defined(v, *e.kids[0]);
        if (!v.is_number()) fail(e.line, e.col, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
        return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case K::binary: return binary(e);
      case K::compare: {
        Value left = eval(*e.kids[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {  // chained: a < b < c is a < b and b < c
          Value right = eval(*e.kids[i + 1]);
          if (!compare(e.ops[i], left, right, e)) return false;
          left = std::move(right);
        }
        return true;
      }
      case K::cond:
        if (eval(*e.kids[0]).truthy()) return eval(*e.kids[1]);
        return e.kids[2] ? eval(*e.kids[2]) : Value::undefined("the conditional expression had no else");
    }
    return Value();
  }

  Value index(const Value& obj, const Value& key, const Expr& e) {
    need_defined(obj, *e.kids[0]);
    if (obj.is_list() || obj.is_string()) {
      if (key.is_int() || key.is_bool()) {
        const bool str = obj.is_string();
        const std::vector<char32_t> cps = str ? utf8_decode(obj.str()) : std::vector<char32_t>{};
        const int64_t n = str ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.list().size());
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined(obj.type_name() + " index " + std::to_string(key.as_int()) + " out of range");
        return str ? Value(utf8_encode({cps[static_cast<size_t>(i)]})) : obj.list()[static_cast<size_t>(i)];
      }
      if (key.is_string()) return attribute(obj, key.str());
      return Value::undefined(obj.type_name() + " indices must be integers");
    }
    if (obj.is_dict()) {  // subscript: the key first, then a method of that name
      if (key.is_string())
        if (const Value* v = obj.find(key.str())) return *v;
      if (key.is_string()) return attribute(obj, key.str());
      return Value::undefined("dict object has no element " + key.repr());
    }
    if (key.is_string()) return attribute(obj, key.str());
    return Value::undefined(obj.type_name() + " object has no element " + key.repr());
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.kids[0]);
    need_defined(obj, *e.kids[0]);
    auto bound = [&](int k) -> std::optional<int64_t> {
      if (!e.kids[k]) return std::nullopt;
      const Value v = eval(*e.kids[k]);
      if (v.is_none()) return std::nullopt;
      if (!v.is_int()) fail(e.kids[k]->line, e.kids[k]->col, "slice indices must be integers or none");
      return v.as_int();
    };
    const auto start = bound(1), stop = bound(2), step_v = bound(3);
    const int64_t step = step_v.value_or(1);
    if (step == 0) fail(e.line, e.col, "slice step cannot be zero");
    const bool str = obj.is_string();
    if (!str && !obj.is_list()) fail(e.line, e.col, "'" + obj.type_name() + "' object is not sliceable");
    const std::vector<char32_t> cps = str ? utf8_decode(obj.str()) : std::vector<char32_t>{};
    const int64_t n = str ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.list().size());
    // Python's slice.indices
    auto clamp = [&](std::optional<int64_t> v, int64_t def) {
      if (!v) return def;
      int64_t x = *v;
      if (x < 0) x += n;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t b = clamp(start, step > 0 ? 0 : n - 1), en = clamp(stop, step > 0 ? n : -1);
    std::vector<char32_t> s_out;
    List l_out;
    for (int64_t i = b; step > 0 ? i < en : i > en; i += step) {
      if (str) s_out.push_back(cps[static_cast<size_t>(i)]);
      else l_out.push_back(obj.list()[static_cast<size_t>(i)]);
    }
    return str ? Value(utf8_encode(s_out)) : Value(std::move(l_out));
  }

  [[noreturn]] void type_error(const Expr& e, const std::string& op, const Value& a, const Value& b) {
    fail(e.line, e.col, "unsupported operand types for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    const Value a = eval(*e.kids[0]);
    if (op == "and") return a.truthy() ? eval(*e.kids[1]) : a;
    if (op == "or") return a.truthy() ? a : eval(*e.kids[1]);
    const Value b = eval(*e.kids[1]);
    if (op == "~") return a.to_string() + b.to_string();
    need_defined(a, *e.kids[0]);
    need_defined(b, *e.kids[1]);
    const bool nums = a.is_number() && b.is_number(), ints = nums && !a.is_float() && !b.is_float();
    if (op == "+") {
      if (ints) return a.as_int() + b.as_int();
      if (nums) return a.as_double() + b.as_double();
      if (a.is_string() && b.is_string()) return a.str() + b.str();
      if (a.is_list() && b.is_list()) {
        List l = a.list();
        l.insert(l.end(), b.list().begin(), b.list().end());
        return l;
      }
      type_error(e, op, a, b);
    }
    if (op == "-") {
      if (ints) return a.as_int() - b.as_int();
      if (nums) return a.as_double() - b.as_double();
      type_error(e, op, a, b);
    }
    if (op == "*") {
      if (ints) return a.as_int() * b.as_int();
      if (nums) return a.as_double() * b.as_double();
      const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq && (count->is_int() || count->is_bool())) {
        const int64_t k = std::max<int64_t>(0, count->as_int());
        if (seq->is_string()) {
          std::string s;
          for (int64_t i = 0; i < k; ++i) s += seq->str();
          return s;
        }
        List l;
        for (int64_t i = 0; i < k; ++i) l.insert(l.end(), seq->list().begin(), seq->list().end());
        return l;
      }
      type_error(e, op, a, b);
    }
    if (!nums) {
      if (op == "%" && a.is_string()) fail(e.line, e.col, "printf-style string formatting (%) is not supported");
      type_error(e, op, a, b);
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
        return r;
      }
      return std::pow(a.as_double(), b.as_double());
    }
    if (b.as_double() == 0) fail(e.line, e.col, "division by zero");
    if (op == "/") return a.as_double() / b.as_double();
    if (op == "//") {
      if (ints) {
        const int64_t q = a.as_int() / b.as_int();
        return (a.as_int() % b.as_int() != 0 && ((a.as_int() < 0) != (b.as_int() < 0))) ? q - 1 : q;
      }
      return std::floor(a.as_double() / b.as_double());
    }
    if (op == "%") {  // Python's: the sign of the divisor
      if (ints) {
        const int64_t r = a.as_int() % b.as_int();
        return r != 0 && ((r < 0) != (b.as_int() < 0)) ? r + b.as_int() : r;
      }
      double r = std::fmod(a.as_double(), b.as_double());
      if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
      return r;
    }
    fail(e.line, e.col, "unknown operator " + op);
  }

  bool compare(const std::string& op, const Value& a, const Value& b, const Expr& e) {
    if (op == "==") return a == b;
    if (op == "!=") return !(a == b);
    if (op == "in" || op == "not in") {
      bool found = false;
      if (b.is_string()) {
        if (!a.is_string()) fail(e.line, e.col, "'in <string>' requires a string on the left, got " + a.type_name());
        found = b.str().find(a.str()) != std::string::npos;
      } else if (b.is_list()) {
        for (const Value& x : b.list()) found = found || x == a;
      } else if (b.is_dict() || b.is_namespace()) {
        found = a.is_string() && b.find(a.str()) != nullptr;
      } else if (!b.is_undefined()) {
        fail(e.line, e.col, "argument of type '" + b.type_name() + "' is not a container");
      }
      return op == "in" ? found : !found;
    }
    int c = 0;
    if (a.is_number() && b.is_number()) c = a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
    else if (a.is_string() && b.is_string()) c = a.str().compare(b.str());
    else {
      need_defined(a, e);
      need_defined(b, e);
      fail(e.line, e.col, "'" + op + "' not supported between '" + a.type_name() + "' and '" + b.type_name() + "'");
    }
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  const std::string& where_;
  const RenderOptions& opt_;
  std::vector<Frame> frames_;
};

}  // namespace

std::string render(const Body& body, const Dict& context, const std::string& where, const RenderOptions& opt) {
  return Interpreter(where, opt).run(body, context);
}

}  // namespace teddy::jinja
