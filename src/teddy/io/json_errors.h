#pragma once
// Parse JSON from a file, turning nlohmann's byte offset into a line and column:
// FormatError "<path>:<line>:<col>: invalid JSON: <reason>"; a value the parser cannot
// hold (a number overflowing a double) is FormatError "<path>: invalid JSON: <reason>".
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace teddy {

nlohmann::json parse_json_or_throw(std::string_view content, const std::string& path);

}  // namespace teddy
