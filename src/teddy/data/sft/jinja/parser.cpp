#include "teddy/data/sft/jinja/parser.h"

#include <algorithm>

#include "teddy/data/sft/jinja/builtins.h"
#include "teddy/data/sft/jinja/error.h"

namespace teddy::jinja {

namespace {

std::unique_ptr<Stmt> make_stmt(Stmt::Kind k, const Token& t) {
  auto s = std::make_unique<Stmt>();
  s->kind = k;
  s->line = t.line;
  s->col = t.col;
  return s;
}

class Parser {
 public:
  Parser(const std::vector<Token>& t, const std::string& where) : t_(t), where_(where) {}

  Body run() {
    Body b = body({});
    if (peek().kind != Tok::eof) fail(peek(), "unexpected tag");
    return b;
  }

 private:
  [[noreturn]] void fail(const Token& t, const std::string& msg) const { throw JinjaError(at(where_, t.line, t.col, msg)); }
  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool is_op(const std::string& o, size_t k = 0) const { return peek(k).kind == Tok::op && peek(k).value == o; }
  bool is_name(const std::string& n, size_t k = 0) const { return peek(k).kind == Tok::name && peek(k).value == n; }
  void expect_op(const std::string& o) {
    if (!is_op(o)) fail(peek(), "expected '" + o + "'" + got());
    next();
  }
  std::string got() const {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::eof: return " (got the end of the template)";
      case Tok::block_end: return " (got %})";
      case Tok::var_end: return " (got }})";
      default: return " (got '" + t.value + "')";
    }
  }
  std::string expect_name() {
    if (peek().kind != Tok::name) fail(peek(), "expected a name" + got());
    return next().value;
  }
  void expect_block_end() {
    if (peek().kind != Tok::block_end) fail(peek(), "expected %}" + got());
    next();
  }

  // Statements until a block tag named in `ends` (left unconsumed: the caller reads it) or eof.
  Body body(const std::vector<std::string>& ends) {
    Body out;
    while (true) {
      const Token& t = peek();
      if (t.kind == Tok::eof) {
        if (!ends.empty()) fail(t, "missing {% " + ends.back() + " %} (the template ended inside a block)");
        return out;
      }
      if (t.kind == Tok::text) {
        auto s = make_stmt(Stmt::Kind::text, t);
        s->text = next().value;
        out.push_back(std::move(s));
      } else if (t.kind == Tok::var_begin) {
        next();
        auto s = make_stmt(Stmt::Kind::output, t);
        s->expr = expression();
        if (peek().kind != Tok::var_end) fail(peek(), "expected }}" + got());
        next();
        out.push_back(std::move(s));
      } else if (t.kind == Tok::block_begin) {
        const Token& name = peek(1);
        if (name.kind != Tok::name) fail(name, "expected a tag name after {%");
        if (std::find(ends.begin(), ends.end(), name.value) != ends.end()) return out;
        next();
        out.push_back(statement());
      } else {
        fail(t, "unexpected token");
      }
    }
  }

  // The block tag `name` that ends the block opened at `open`.
  void end_tag(const std::string& name) {
    next();  // {%
    if (!is_name(name)) fail(peek(), "expected {% " + name + " %}");
    next();
    expect_block_end();
  }

  std::unique_ptr<Stmt> statement() {
    const Token& t = next();
    const std::string& n = t.value;
    auto mk = [&](Stmt::Kind k) { return make_stmt(k, t); };
    if (n == "if") {
      auto s = mk(Stmt::Kind::if_);
      s->conds.push_back(expression());
      expect_block_end();
      s->bodies.push_back(body({"elif", "else", "endif"}));
      while (true) {
        next();  // {%
        const std::string tag = next().value;
        if (tag == "elif") {
          s->conds.push_back(expression());
          expect_block_end();
          s->bodies.push_back(body({"elif", "else", "endif"}));
        } else if (tag == "else") {
          expect_block_end();
          s->else_body = body({"endif"});
          end_tag("endif");
          break;
        } else {
          expect_block_end();
          break;
        }
      }
      return s;
    }
    if (n == "for") {
      auto s = mk(Stmt::Kind::for_);
      s->targets.push_back(expect_name());
      while (is_op(",")) {
        next();
        s->targets.push_back(expect_name());
      }
      if (!is_name("in")) fail(peek(), "expected 'in'" + got());
      next();
      s->expr = or_expr();  // `if` here filters the loop: not a conditional expression
      if (is_name("if")) {
        next();
        s->cond = expression();
      }
      if (is_name("recursive")) fail(peek(), "unsupported: recursive for loops");
      expect_block_end();
      s->body = body({"else", "endfor"});
      next();
      if (next().value == "else") {
        expect_block_end();
        s->else_body = body({"endfor"});
        end_tag("endfor");
      } else {
        expect_block_end();
      }
      return s;
    }
    if (n == "set") {
      const std::string first = expect_name();
      if (is_op(".")) {
        next();
        auto s = mk(Stmt::Kind::set);
        s->targets.push_back(first);
        s->attr = expect_name();
        expect_op("=");
        s->expr = expression();
        expect_block_end();
        return s;
      }
      std::vector<std::string> names{first};
      while (is_op(",")) {
        next();
        names.push_back(expect_name());
      }
      if (peek().kind == Tok::block_end && names.size() == 1) {
        next();
        auto s = mk(Stmt::Kind::set_block);
        s->targets = names;
        s->body = body({"endset"});
        end_tag("endset");
        return s;
      }
      auto s = mk(Stmt::Kind::set);
      s->targets = names;
      expect_op("=");
      s->expr = tuple_or_expression();
      expect_block_end();
      return s;
    }
    if (n == "macro") {
      auto s = mk(Stmt::Kind::macro);
      s->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name());
        if (is_op("=")) {
          next();
          s->defaults.push_back(expression());
        } else {
          s->defaults.push_back(nullptr);
        }
        if (!is_op(")")) expect_op(",");
      }
      next();
      expect_block_end();
      s->body = body({"endmacro"});
      end_tag("endmacro");
      return s;
    }
    if (n == "break" || n == "continue") {
      auto s = mk(n == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_);
      expect_block_end();
      return s;
    }
    static const char* known_unsupported[] = {"extends", "block", "include", "import", "from", "call", "filter",
                                              "with", "raw", "autoescape", "generation", "do", "trans"};
    for (const char* k : known_unsupported)
      if (n == k) fail(t, std::string("unsupported Jinja tag '") + k + "' (teddy's engine renders chat templates: docs/SFT.md)");
    fail(t, "unknown tag '" + n + "'");
  }

  // A bare tuple (`set a, b = 1, 2`) or one expression.
  ExprPtr tuple_or_expression() {
    ExprPtr e = expression();
    if (!is_op(",")) return e;
    auto t = node(Expr::Kind::tuple, peek());
    t->kids.push_back(std::move(e));
    while (is_op(",")) {
      next();
      t->kids.push_back(expression());
    }
    return t;
  }

  ExprPtr node(Expr::Kind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  ExprPtr expression() {
    ExprPtr e = or_expr();
    while (is_name("if")) {
      auto c = node(Expr::Kind::cond, next());
      c->kids.push_back(or_expr());
      c->kids.push_back(std::move(e));
      if (is_name("else")) {
        next();
        c->kids.push_back(expression());
      } else {
        c->kids.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(ExprPtr a, const Token& op, const std::string& name, ExprPtr b) {
    auto e = node(Expr::Kind::binary, op);
    e->name = name;
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      const Token& op = next();
      e = binary(std::move(e), op, "or", and_expr());
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      const Token& op = next();
      e = binary(std::move(e), op, "and", not_expr());
    }
    return e;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      auto e = node(Expr::Kind::unary, next());
      e->name = "not";
      e->kids.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr first = math1();
    ExprPtr e;
    while (true) {
      std::string op;
      if (peek().kind == Tok::op && (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = peek().value;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && is_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!e) {
        e = node(Expr::Kind::compare, peek());
        e->line = first->line;
        e->col = first->col;
        e->kids.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->kids.push_back(math1());
    }
    return e ? std::move(e) : std::move(first);
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      e = binary(std::move(e), op, op.value, concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      const Token& op = next();
      e = binary(std::move(e), op, "~", math2());
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      e = binary(std::move(e), op, op.value, power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      const Token& op = next();
      e = binary(std::move(e), op, "**", unary(true));
    }
    return e;
  }
  ExprPtr unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::unary, peek());
      e->name = next().value;
      e->kids.push_back(unary(false));
    } else {
      e = postfix(primary());
    }
    return with_filter ? filters(std::move(e)) : std::move(e);
  }

  // Call arguments after '(': positional then keyword (name=value).
  void call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == Tok::name && is_op("=", 1)) {
        e.kw_names.push_back(next().value);
        next();
        e.kw_kids.push_back(expression());
      } else {
        if (!e.kw_names.empty()) fail(peek(), "a positional argument after a keyword argument");
        e.kids.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    next();
  }

  ExprPtr filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        const Token& nt = peek();
        std::string name = expect_name();
        while (is_op(".")) {  // dotted filter names do not exist in the builtins; refused below
          next();
          name += "." + expect_name();
        }
        if (!is_filter(name)) fail(nt, "unsupported filter '" + name + "'");
        auto f = node(Expr::Kind::filter, nt);
        f->name = name;
        f->kids.push_back(std::move(e));
        if (is_op("(")) call_args(*f);
        e = postfix(std::move(f));
      } else if (is_name("is")) {
        next();
        auto t = node(Expr::Kind::test, peek());
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        const Token& nt = peek();
        // `is none` / `is true`: keywords as test names
        std::string name = expect_name();
        if (!is_test(name)) fail(nt, "unsupported test '" + name + "'");
        t->name = name;
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          call_args(*t);
        } else if ((peek().kind == Tok::string || peek().kind == Tok::integer || peek().kind == Tok::floating ||
                    (peek().kind == Tok::name && !is_name("else") && !is_name("or") && !is_name("and") &&
                     !is_name("if") && !is_name("is") && !is_name("in") && !is_name("not"))) ||
                   is_op("[") || is_op("{")) {
          t->kids.push_back(postfix(primary()));  // `is divisibleby 3`, `is equalto 'x'`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const Token& dot = next();
        auto a = node(Expr::Kind::attr, dot);
        a->line = e->line;  // errors point at the start of the expression
        a->col = e->col;
        if (peek().kind == Tok::integer) {  // `x.0` is x[0]
          a->kind = Expr::Kind::index;
          auto lit = node(Expr::Kind::literal, peek());
          lit->value = Value(static_cast<int64_t>(std::stoll(next().value)));
          a->kids.push_back(std::move(e));
          a->kids.push_back(std::move(lit));
        } else {
          a->name = expect_name();
          a->kids.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        const Token& br = next();
        ExprPtr parts[3];
        int colons = 0;
        while (!is_op("]")) {
          if (is_op(":")) {
            if (++colons > 2) fail(peek(), "a slice takes at most start:stop:step");
            next();
            continue;
          }
          if (parts[colons]) fail(peek(), "expected ']' or ':'" + got());
          parts[colons] = expression();
        }
        next();
        if (colons == 0) {
          if (!parts[0]) fail(br, "empty subscript");
          auto ix = node(Expr::Kind::index, br);
          ix->line = e->line;
          ix->col = e->col;
          ix->kids.push_back(std::move(e));
          ix->kids.push_back(std::move(parts[0]));
          e = std::move(ix);
        } else {
          auto sl = node(Expr::Kind::slice, br);
          sl->kids.push_back(std::move(e));
          for (auto& p : parts) sl->kids.push_back(std::move(p));
          e = std::move(sl);
        }
      } else if (is_op("(")) {
        auto c = node(Expr::Kind::call, peek());
        c->line = e->line;  // errors point at the start of what is called
        c->col = e->col;
        c->kids.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr primary() {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::name: {
        next();
        auto lit = node(Expr::Kind::literal, t);
        if (t.value == "true" || t.value == "True") lit->value = Value(true);
        else if (t.value == "false" || t.value == "False") lit->value = Value(false);
        else if (t.value == "none" || t.value == "None") lit->value = Value::none();
        else {
          lit->kind = Expr::Kind::name;
          lit->name = t.value;
        }
        return lit;
      }
      case Tok::string: {
        auto lit = node(Expr::Kind::literal, t);
        std::string s;
        while (peek().kind == Tok::string) s += next().value;  // adjacent literals concatenate
        lit->value = Value(std::move(s));
        return lit;
      }
      case Tok::integer: {
        next();
        auto lit = node(Expr::Kind::literal, t);
        try {
          lit->value = Value(static_cast<int64_t>(std::stoll(t.value)));
        } catch (const std::exception&) {
          fail(t, "integer literal out of the 64-bit range");
        }
        return lit;
      }
      case Tok::floating: {
        next();
        auto lit = node(Expr::Kind::literal, t);
        lit->value = Value(std::stod(t.value));
        return lit;
      }
      case Tok::op: {
        if (t.value == "(") {
          next();
          if (is_op(")")) {
            next();
            return node(Expr::Kind::tuple, t);
          }
          ExprPtr e = expression();
          if (is_op(",")) {
            auto tup = node(Expr::Kind::tuple, t);
            tup->kids.push_back(std::move(e));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              tup->kids.push_back(expression());
            }
            e = std::move(tup);
          }
          expect_op(")");
          return e;
        }
        if (t.value == "[") {
          next();
          auto l = node(Expr::Kind::list, t);
          while (!is_op("]")) {
            l->kids.push_back(expression());
            if (!is_op("]")) expect_op(",");
          }
          next();
          return l;
        }
        if (t.value == "{") {
          next();
          auto d = node(Expr::Kind::dict, t);
          while (!is_op("}")) {
            d->kids.push_back(expression());
            expect_op(":");
            d->kids.push_back(expression());
            if (!is_op("}")) expect_op(",");
          }
          next();
          return d;
        }
        break;
      }
      default: break;
    }
    fail(t, "expected an expression" + got());
  }

  const std::vector<Token>& t_;
  const std::string& where_;
  size_t i_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& where) { return Parser(tokens, where).run(); }

}  // namespace teddy::jinja
