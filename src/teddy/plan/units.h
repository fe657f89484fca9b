#pragma once
// Human units for planning numbers: parse "1.4T", "2e21", "80GB", "80GiB" and
// print 124.4M, 1.21e+20, 80.0 GB. Parsers name the flag they read in errors.
#include <string>
#include <string_view>

namespace teddy::plan {

// Parses a positive count with an optional decimal suffix K, M, B (or G), T, P
// ("1.4T" = 1.4e12; "2e21" also works). Rejects NaN, Inf, <= 0 and values above
// `max`, throwing ConfigError "<flag>: <rule> (got <text>)".
double parse_count(std::string_view flag, std::string_view text, double max);

// Parses a positive byte size: "80GB" (decimal, 80e9), "80GiB" (binary, 80*2^30),
// "512MB", "1.5TB", or a plain number of bytes. Suffixes are case-insensitive.
double parse_bytes(std::string_view flag, std::string_view text, double max);

// Checks an already-parsed value: finite, > 0 (or >= 0 if allow_zero) and <= max.
void check_range(std::string_view flag, double value, double max, bool allow_zero = false);

// 124.44M, 1.21B, 20.2T (3 significant digits; plain below 1000).
std::string format_count(double n);
// 7.41 GFLOP, 1.21 EFLOP (SI prefixes, for FLOP counts per token).
std::string format_flops(double flops);
// 1.21e+20 style, for FLOPs.
std::string format_sci(double x);
// 80.00 GB, 512.00 MB (decimal units, as ZeRO's and vendors' tables use):
// teddy::format_bytes(bytes, ByteUnits::decimal) (core/memory_usage.h).
std::string format_bytes(double bytes);
// 3.2 s, 4.1 h, 12.3 days, 2.1 years.
std::string format_duration(double seconds);

}  // namespace teddy::plan
