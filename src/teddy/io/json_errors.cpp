#include "teddy/io/json_errors.h"

#include <algorithm>

#include "teddy/core/error.h"

namespace teddy {

nlohmann::json parse_json_or_throw(std::string_view content, const std::string& path) {
  try {
    return nlohmann::json::parse(content.begin(), content.end());
  } catch (const nlohmann::json::parse_error& e) {
    const size_t at = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, content.size());
    const std::string_view before = content.substr(0, at);
    const size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    const size_t nl = before.rfind('\n');
    const size_t col = at - (nl == std::string_view::npos ? 0 : nl + 1) + 1;
    std::string why = e.what();
    if (const size_t p = why.find("parse error"); p != std::string::npos) why = why.substr(p);
    throw FormatError(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": invalid JSON: " + why);
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but a value the parser cannot hold (a number that overflows a
    // double: out_of_range.406); nlohmann gives no position for these.
    std::string why = e.what();
    if (const size_t p = why.find("] "); p != std::string::npos) why = why.substr(p + 2);
    throw FormatError(path + ": invalid JSON: " + why);
  }
}

}  // namespace teddy
