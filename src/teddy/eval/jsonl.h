#pragma once
// Reading the files evaluation data is published in: JSON Lines, plain or gzip
// compressed (HumanEval ships as HumanEval.jsonl.gz), and the fields of their rows
// with errors that name the file, the line and the field.
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace teddy {

// The whole file as bytes; a name ending in ".gz" is gunzipped (zlib). Throws
// FormatError naming the file when it cannot be read or is not valid gzip.
std::string read_maybe_gz(const std::string& path);

struct JsonlRow {
  nlohmann::json value;
  size_t line = 0;  // 1-based line in the file
};

// Every non-blank line parsed as one JSON object. Throws FormatError
// "<path>:<line>: invalid JSON: ..." or "... expected a JSON object".
std::vector<JsonlRow> read_jsonl(const std::string& path);

// A required field of row `r` of `path`: "<path>:<line>: missing field \"<name>\"" or
// "... field \"<name>\" must be a string (got number)".
const nlohmann::json& require_field(const JsonlRow& r, const std::string& path, const char* name);
std::string require_string(const JsonlRow& r, const std::string& path, const char* name);
// "<path>:<line>: <what>" as a FormatError.
[[noreturn]] void row_error(const std::string& path, size_t line, const std::string& what);

}  // namespace teddy
