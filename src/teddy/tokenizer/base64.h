#pragma once
// Standard base64 (RFC 4648, '+' '/', '=' padding): tiktoken rank files and
// teddy's tokenizer file store token bytes this way.
#include <optional>
#include <string>
#include <string_view>

namespace teddy {

std::string base64_encode(std::string_view bytes);
// Strict: canonical padding required, no whitespace. nullopt if malformed.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace teddy
