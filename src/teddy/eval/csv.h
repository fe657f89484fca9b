#pragma once
// RFC 4180 CSV as MMLU publishes it (Python's csv module, default dialect): comma
// separated, fields quoted with '"' when they hold a comma, quote or line break, a
// quote inside a quoted field doubled. No header is assumed.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

struct CsvRow {
  std::vector<std::string> fields;
  size_t line = 0;  // 1-based line where the record starts
};

// Throws FormatError "<path>:<line>: ..." for an unterminated quoted field or a
// stray character after a closing quote. A final record without a newline counts.
std::vector<CsvRow> parse_csv(std::string_view text, const std::string& path);

}  // namespace teddy
