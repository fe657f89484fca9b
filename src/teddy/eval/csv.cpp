#include "teddy/eval/csv.h"

#include "teddy/core/error.h"

namespace teddy {

std::vector<CsvRow> parse_csv(std::string_view text, const std::string& path) {
  std::vector<CsvRow> rows;
  size_t i = 0, line = 1;
  const size_t n = text.size();
  while (i < n) {
    // Skip blank lines between records (Python's csv yields [] for them).
    if (text[i] == '\n' || text[i] == '\r') {
      if (text[i] == '\n') ++line;
      ++i;
      continue;
    }
    CsvRow row;
    row.line = line;
    for (;;) {  // one field per iteration
      std::string field;
      if (i < n && text[i] == '"') {
        const size_t open_line = line;
        ++i;
        for (;;) {
          if (i >= n) throw FormatError(path + ":" + std::to_string(open_line) + ": unterminated quoted field");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field += '"';
              ++i;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            field += c;
          }
        }
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          throw FormatError(path + ":" + std::to_string(line) + ": unexpected character '" + std::string(1, text[i]) +
                            "' after a closing quote (expected a comma or the end of the line)");
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') field += text[i++];
      }
      row.fields.push_back(std::move(field));
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      break;  // end of record
    }
    if (i < n && text[i] == '\r') ++i;
    if (i < n && text[i] == '\n') {
      ++i;
      ++line;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace teddy
