#pragma once
// Errors: library code throws teddy::Error (never prints, never exits); the CLI
// catches it, prints what() and picks the exit code. Messages name the file,
// line or field at fault and the rule that was broken.
#include <stdexcept>
#include <string>

namespace teddy {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A configuration value that breaks a rule: "<field>: <rule> (got <value>)".
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Bad bytes on disk or on the wire: "<path>: <what was expected>".
class FormatError : public Error {
 public:
  using Error::Error;
};

#define TEDDY_CHECK(cond, msg)                  \
  do {                                          \
    if (!(cond)) throw ::teddy::Error(msg);     \
  } while (0)

}  // namespace teddy
