// The HumanEval sandbox: programs that pass, fail, hang or misbehave, and planted
// escapes, each ending as a failed sample within its limits while the test (teddy)
// carries on.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "teddy/eval/sandbox.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;

SandboxLimits quick() {
  SandboxLimits l;
  l.wall_seconds = 3.0;
  l.cpu_seconds = 2;
  return l;
}

// Slack for starting python and tearing processes down on a loaded 2-core machine.
constexpr double kSlack = 3.0;

fs::path world_writable_tmp(const char* name) {
  std::string t = std::string("/tmp/") + name + "-XXXXXX";
  if (!mkdtemp(t.data())) return {};
  chmod(t.c_str(), 0777);
  return t;
}

int processes_of_nobody() {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string s = e.path().filename().string();
    if (s.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st;
    if (stat(e.path().c_str(), &st) == 0 && st.st_uid == 65534) ++n;
  }
  return n;
}

TEST(EvalSandbox, PassesFailsAndReportsIsolation) {
  const SandboxResult ok = run_python_sandboxed("print('hello')\n", quick());
  EXPECT_TRUE(ok.passed()) << ok.output << " [" << ok.isolation << "]";
  EXPECT_NE(ok.output.find("hello"), std::string::npos);
  const SandboxResult bad = run_python_sandboxed("assert 1 == 2\n", quick());
  EXPECT_FALSE(bad.passed());
  EXPECT_TRUE(bad.exited);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("AssertionError"), std::string::npos);
  std::printf("sandbox isolation here: %s\n", ok.isolation.c_str());
  // Every step must be in force (a machine without namespaces fails here: the sandbox
  // is not safe there, docs/EVAL.md); as root the program also runs as nobody.
  for (const char* what : {"netns", "mountns", "pidns", "own-proc", "readonly-mounts", "tmpfs-work", "rlimits"})
    EXPECT_NE(ok.isolation.find(what), std::string::npos) << what << " missing from: " << ok.isolation;
  if (geteuid() == 0) EXPECT_NE(ok.isolation.find("nobody"), std::string::npos) << ok.isolation;
}

TEST(EvalSandbox, SeesOnlyItsOwnProcesses) {
  // Its /proc lists the reaper (1) and itself (2), not the host's processes.
  const SandboxResult r = run_python_sandboxed(
      "import os\npids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\nprint(pids)\nassert pids == [1, 2], pids\n",
      quick());
  EXPECT_TRUE(r.passed()) << r.output;
}

TEST(EvalSandbox, InfiniteLoopIsKilled) {
  const SandboxResult r = run_python_sandboxed("while True:\n    pass\n", quick());
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.seconds, quick().wall_seconds + kSlack);
  // Sleeping uses no CPU: the wall-clock deadline ends it.
  const SandboxResult s = run_python_sandboxed("import time\ntime.sleep(100)\n", quick());
  EXPECT_FALSE(s.passed());
  EXPECT_TRUE(s.timed_out);
  EXPECT_LT(s.seconds, quick().wall_seconds + kSlack);
}

TEST(EvalSandbox, ForkBombIsContainedAndCleanedUp) {
  const int before = processes_of_nobody();
  const SandboxResult r = run_python_sandboxed(
      "import os\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError:\n"
      "        pass\n",
      quick());
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.seconds, quick().wall_seconds + kSlack);
  // Every process it made is gone (a PID namespace dies with its first process).
  for (int i = 0; i < 50 && processes_of_nobody() > before; ++i) usleep(100000);
  EXPECT_LE(processes_of_nobody(), before);
}

TEST(EvalSandbox, HugeAllocationFails) {
  const SandboxResult r = run_python_sandboxed("x = bytearray(10 * 2**30)\nprint('allocated')\n", quick());
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.output.find("allocated"), std::string::npos);
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
}

TEST(EvalSandbox, CannotWriteOutsideItsDirectory) {
  const fs::path d = world_writable_tmp("teddy-escape");
  ASSERT_FALSE(d.empty());
  const fs::path target = d / "escaped";
  const SandboxResult r = run_python_sandboxed("open('" + target.string() + "', 'w').write('x')\n", quick());
  EXPECT_FALSE(r.passed()) << r.output;
  EXPECT_FALSE(fs::exists(target));
  // Its own directory is writable.
  const SandboxResult w = run_python_sandboxed("open('f.txt', 'w').write('x')\nprint(open('f.txt').read())\n", quick());
  EXPECT_TRUE(w.passed()) << w.output;
  fs::remove_all(d);
}

TEST(EvalSandbox, CannotReadASecretUnderHome) {
  const fs::path home = world_writable_tmp("teddy-home");
  ASSERT_FALSE(home.empty());
  chmod(home.c_str(), 0755);  // readable by anyone: only the sandbox's mount hides it
  std::ofstream(home / "secret.txt") << "TOPSECRET";
  chmod((home / "secret.txt").c_str(), 0644);
  const char* old = std::getenv("HOME");
  const std::string saved = old ? old : "";
  setenv("HOME", home.c_str(), 1);
  const SandboxResult r = run_python_sandboxed("print(open('" + (home / "secret.txt").string() + "').read())\n", quick());
  if (old) setenv("HOME", saved.c_str(), 1);
  else unsetenv("HOME");
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.output.find("TOPSECRET"), std::string::npos);
  fs::remove_all(home);
}

TEST(EvalSandbox, NoNetwork) {
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 4), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  const SandboxResult r = run_python_sandboxed(
      "import socket\nc = socket.create_connection(('127.0.0.1', " + std::to_string(port) + "), timeout=2)\nprint('connected')\n",
      quick());
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.output.find("connected"), std::string::npos);
  EXPECT_LT(accept(s, nullptr, nullptr), 0);  // nobody knocked
  close(s);
}

TEST(EvalSandbox, CannotKillTeddy) {
  const SandboxResult r = run_python_sandboxed(
      "import os, signal\nos.kill(" + std::to_string(getpid()) + ", signal.SIGKILL)\nos.kill(" + std::to_string(getppid()) +
          ", signal.SIGKILL)\n",
      quick());
  EXPECT_FALSE(r.passed());  // and this process is still here to check it
}

TEST(EvalSandbox, CannotFillTheDisk) {
  SandboxLimits l = quick();
  l.wall_seconds = 10;  // writing takes a while
  // One large file hits the file-size limit; many files hit the tmpfs's size.
  const SandboxResult big = run_python_sandboxed("open('big', 'wb').write(b'x' * (64 << 20))\nprint('wrote')\n", l);
  EXPECT_FALSE(big.passed());
  EXPECT_EQ(big.output.find("wrote"), std::string::npos);
  const SandboxResult many = run_python_sandboxed(
      "for i in range(1000):\n    open('f%d' % i, 'wb').write(b'x' * (8 << 20))\nprint('wrote')\n", l);
  EXPECT_FALSE(many.passed());
  EXPECT_EQ(many.output.find("wrote"), std::string::npos);
  EXPECT_LT(many.seconds, l.wall_seconds + kSlack);
}

}  // namespace
}  // namespace teddy
