#pragma once
// A Jinja template as Hugging Face renders chat templates: transformers' environment
// (trim_blocks, lstrip_blocks, loop controls; globals raise_exception, strftime_now;
// tojson with ensure_ascii=False). The supported subset and what is refused:
// docs/SFT.md ("Jinja chat templates").
//
//   jinja::Template t(text, "tokenizer_config.json: chat_template");
//   std::string s = t.render({{"messages", msgs}, {"add_generation_prompt", true}});
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "teddy/data/sft/jinja/ast.h"
#include "teddy/data/sft/jinja/error.h"
#include "teddy/data/sft/jinja/interpreter.h"

namespace teddy::jinja {

class Template {
 public:
  // Parses `source`; `where` names it in messages. Throws JinjaError with the line and
  // column of a syntax error or of a construct the engine does not support.
  Template(const std::string& source, std::string where = "chat template");

  // `context`: a JSON object whose keys become the template's variables. Throws
  // JinjaError naming the line and column of a failure (raise_exception included).
  std::string render(const nlohmann::json& context, const RenderOptions& opt = {}) const;

  const std::string& where() const { return where_; }

 private:
  std::string where_;
  std::shared_ptr<const Body> body_;
};

}  // namespace teddy::jinja
