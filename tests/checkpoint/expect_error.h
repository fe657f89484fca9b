#pragma once
// The checkpoint tests' check that an error names what it should (the file, the field).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "teddy/core/error.h"

namespace teddy::test {

inline void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace teddy::test
