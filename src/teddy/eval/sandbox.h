#pragma once
// Running untrusted Python (HumanEval completions) in a child process that can harm
// neither teddy nor the machine. See docs/EVAL.md ("The code sandbox") for what is
// isolated, what is not, and why.
//
// The child (one per program):
//   - new network namespace (only a down loopback: no connection leaves or arrives),
//     new mount, PID, IPC and UTS namespaces (as root; as another user inside a new
//     user namespace, where the kernel permits it);
//   - every mount re-mounted read-only; a fresh size-limited tmpfs as the working
//     directory (also HOME and TMPDIR), the only writable place; the user's home and
//     teddy's working directory covered by empty read-only tmpfs mounts;
//   - as root: runs as nobody (uid/gid 65534), so file permissions apply and the
//     process limit counts;
//   - rlimits: CPU seconds, address space, file size, processes, open files, no core;
//   - a wall-clock deadline, after which the namespace's first process is killed,
//     which kills every process in the namespace (fork bombs, setsid escapes);
//   - PR_SET_PDEATHSIG: if teddy dies, the sandbox dies.
// Each step that the kernel refuses is left out and reported in SandboxResult::isolation.
#include <cstddef>
#include <string>

namespace teddy {

struct SandboxLimits {
  double wall_seconds = 10.0;
  int cpu_seconds = 10;
  size_t address_space_bytes = size_t(1) << 30;  // RLIMIT_AS
  size_t file_bytes = size_t(16) << 20;          // RLIMIT_FSIZE: largest file written
  size_t disk_bytes = size_t(64) << 20;          // the working tmpfs's size
  int processes = 32;                            // RLIMIT_NPROC (for the sandbox's user)
  int open_files = 64;                           // RLIMIT_NOFILE
  size_t output_bytes = size_t(16) << 10;        // stdout + stderr kept (the rest read and dropped)
};

struct SandboxResult {
  bool exited = false;     // ended by exit(), not a signal or the deadline
  int exit_code = -1;
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed at the wall-clock deadline
  double seconds = 0;
  std::string output;      // stdout and stderr interleaved, truncated to output_bytes
  std::string isolation;   // what was in force: "netns mountns pidns readonly-root tmpfs-work nobody ..."
  bool passed() const { return exited && exit_code == 0 && !timed_out; }
};

// Runs `program` with `python` (-I -B, isolated mode, no bytecode) under the limits.
// Never throws for what the program does; throws Error only when the sandbox cannot
// be set up at all (no temporary directory, fork failed).
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {},
                                   const std::string& python = "/usr/bin/python3");

}  // namespace teddy
