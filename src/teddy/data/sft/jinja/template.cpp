#include "teddy/data/sft/jinja/template.h"

#include "teddy/data/sft/jinja/error.h"
#include "teddy/data/sft/jinja/lexer.h"
#include "teddy/data/sft/jinja/parser.h"

namespace teddy::jinja {

Template::Template(const std::string& source, std::string where)
    : where_(std::move(where)), body_(std::make_shared<const Body>(parse(lex(source, where_), where_))) {}

std::string Template::render(const nlohmann::json& context, const RenderOptions& opt) const {
  if (!context.is_object()) throw JinjaError(where_ + ": the render context must be a JSON object");
  Dict vars;
  for (const auto& [k, v] : context.items()) vars.emplace_back(k, Value::from_json(v));
  return jinja::render(*body_, vars, where_, opt);
}

}  // namespace teddy::jinja
