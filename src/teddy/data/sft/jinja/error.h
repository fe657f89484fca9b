#pragma once
// Errors of the Jinja engine: a template that does not parse (or uses a construct the
// engine does not support), and a render that fails (an undefined value used, a type
// mismatch, the template's own raise_exception). Messages name where: the template's
// name, line and column.
#include <string>

#include "teddy/core/error.h"

namespace teddy::jinja {

class JinjaError : public Error {
 public:
  using Error::Error;
};

// "<where>:<line>:<col>: <msg>"
inline std::string at(const std::string& where, int line, int col, const std::string& msg) {
  return where + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg;
}

}  // namespace teddy::jinja
