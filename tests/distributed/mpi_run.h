#pragma once
// Runs a command under `mpirun --oversubscribe -np N` (as root where needed, one
// OpenMP thread per rank, a hard timeout so a hung job fails the test instead of
// hanging it) and captures its output.
#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <sys/wait.h>

struct MpiResult {
  int rc = -1;
  std::string output;
  std::string grep(const std::string& needle) const {
    std::istringstream in(output);
    std::string line, out;
    while (std::getline(in, line))
      if (line.find(needle) != std::string::npos) out += line + "\n";
    return out;
  }
};

inline MpiResult run_command(const std::string& cmd) {
  MpiResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string mpirun_env() {
  return "env OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ";
}

inline std::string mpirun_prefix(int np) {
  return "mpirun --oversubscribe --bind-to none -np " + std::to_string(np) + " ";
}

inline MpiResult mpi_run(int np, const std::string& cmd, int timeout_s = 240) {
  return run_command(mpirun_env() + "timeout -k 5 " + std::to_string(timeout_s) + " " + mpirun_prefix(np) + cmd);
}
