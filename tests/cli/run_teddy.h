// Runs the built `teddy` binary and returns its exit code and output: the one way the
// tests drive the command line (tests/cli, eval, plan, train).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace teddy::test {

struct CliResult {
  int rc = -1;
  std::string out;  // stdout, and stderr unless dropped
};

enum class Stderr { merge, drop };

inline std::string teddy_binary() { return std::string(TEDDY_BINARY_DIR) + "/teddy"; }

// A shell command line, run as written (add the redirections you want).
inline CliResult run_shell(const std::string& cmd) {
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// prefix goes before the binary, e.g. "OMP_NUM_THREADS=1 timeout 60 ".
inline CliResult run_teddy(const std::string& args, Stderr err = Stderr::merge, const std::string& prefix = "") {
  const std::string bin = teddy_binary();
  EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " missing: build the `teddy` target first";
  return run_shell(prefix + bin + " " + args + (err == Stderr::merge ? " 2>&1" : " 2>/dev/null"));
}

}  // namespace teddy::test
