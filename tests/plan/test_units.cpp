// Parsing and printing planning units; every bad value names its flag.
#include <gtest/gtest.h>

#include <string>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/plan/units.h"

using namespace teddy;
using namespace teddy::plan;

TEST(PlanUnits, ParseCount) {
  EXPECT_DOUBLE_EQ(parse_count("--tokens", "1.4T", 1e18), 1.4e12);
  EXPECT_DOUBLE_EQ(parse_count("--tokens", "25B", 1e18), 25e9);
  EXPECT_DOUBLE_EQ(parse_count("--tokens", "25b", 1e18), 25e9);
  EXPECT_DOUBLE_EQ(parse_count("--flops", "2e21", 1e34), 2e21);
  EXPECT_DOUBLE_EQ(parse_count("--params", "400M", 1e16), 400e6);
  EXPECT_DOUBLE_EQ(parse_count("--x", " 12 ", 100), 12);
}

TEST(PlanUnits, ParseBytes) {
  EXPECT_DOUBLE_EQ(parse_bytes("--device-mem", "80GB", 1e15), 80e9);
  EXPECT_DOUBLE_EQ(parse_bytes("--device-mem", "80GiB", 1e15), 80.0 * (1 << 30));
  EXPECT_DOUBLE_EQ(parse_bytes("--device-mem", "512mb", 1e15), 512e6);
  EXPECT_DOUBLE_EQ(parse_bytes("--device-mem", "1.5 TB", 1e15), 1.5e12);
}

void expect_message(const std::function<void()>& f, const std::string& starts) {
  try {
    f();
    FAIL() << "expected ConfigError starting with " << starts;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(starts, 0), 0u) << e.what();
  }
}

TEST(PlanUnits, BadValuesNameTheFlag) {
  expect_message([] { parse_count("--tokens", "-5", 1e18); }, "--tokens: must be > 0");
  expect_message([] { parse_count("--tokens", "0", 1e18); }, "--tokens: must be > 0");
  expect_message([] { parse_count("--tokens", "nan", 1e18); }, "--tokens: must be a finite");
  expect_message([] { parse_count("--tokens", "inf", 1e18); }, "--tokens: must be a finite");
  expect_message([] { parse_count("--tokens", "1e300", 1e18); }, "--tokens: must be at most");
  expect_message([] { parse_count("--tokens", "lots", 1e18); }, "--tokens: expected a number");
  expect_message([] { parse_count("--tokens", "5X", 1e18); }, "--tokens: unknown suffix");
  expect_message([] { parse_count("--mfu", "1.5", 1.0); }, "--mfu: must be at most");
  expect_message([] { parse_bytes("--device-mem", "80 parsecs", 1e15); }, "--device-mem: unknown size unit");
  expect_message([] { parse_bytes("--device-mem", "-1GB", 1e15); }, "--device-mem: must be > 0");
  expect_message([] { check_range("mfu", 0.0 / 0.0, 1.0); }, "mfu: must be a finite");
}

TEST(PlanUnits, Format) {
  EXPECT_EQ(format_count(124475904), "124.5M");
  EXPECT_EQ(format_count(1.5e12), "1.50T");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_bytes(80e9), "80.00 GB");
  EXPECT_EQ(format_bytes(512e6), "512.00 MB");
  EXPECT_EQ(format_bytes(999), "999 B");
  EXPECT_EQ(format_bytes(-2.5e12), "-2.50 TB");
  EXPECT_EQ(format_bytes(3e15), "3000.00 TB");
  // The run logs' binary form, the same formatter with the other units.
  EXPECT_EQ(human_bytes(1.5 * 1048576), "1.5 MiB");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1024), "1.0 KiB");
  EXPECT_EQ(human_bytes(40.0 * 1073741824), "40.0 GiB");
  EXPECT_EQ(human_bytes(2048.0 * 1099511627776), "2048.0 TiB");
  EXPECT_EQ(format_flops(7.41e9), "7.41 GFLOP");
  EXPECT_EQ(format_duration(3600 * 5), "5.0 h");
  EXPECT_EQ(format_duration(86400 * 7.8), "7.8 days");
}
