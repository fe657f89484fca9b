#include "teddy/eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

// What the child reports up the info pipe: 8-byte records (atomic on a pipe).
enum Record : int { kIsolation = 1, kInnerPid = 2, kStatus = 3 };
enum Bit : int {
  kNet = 1, kMountNs = 2, kPidNs = 4, kReadOnly = 8, kTmpfsWork = 16, kHideHome = 32, kHideCwd = 64,
  kAsNobody = 128, kUserNs = 256, kRlimits = 512, kOwnProc = 1024
};
constexpr uid_t kNobody = 65534;

struct MountPoint {
  std::string path;
  unsigned long flags = 0;  // the flags a read-only bind remount must keep
};

// The mount table (parsed before fork: the child may only make system calls).
std::vector<MountPoint> mount_points() {
  std::vector<MountPoint> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string id, parent, dev, root, mp, opts;
    if (!(ss >> id >> parent >> dev >> root >> mp >> opts)) continue;
    std::string path;  // octal escapes: "\040" is a space
    for (size_t i = 0; i < mp.size(); ++i) {
      if (mp[i] == '\\' && i + 3 < mp.size()) {
        path += static_cast<char>(std::strtol(mp.substr(i + 1, 3).c_str(), nullptr, 8));
        i += 3;
      } else {
        path += mp[i];
      }
    }
    MountPoint m;
    m.path = path;
    std::istringstream os(opts);
    std::string o;
    while (std::getline(os, o, ',')) {
      if (o == "nosuid") m.flags |= MS_NOSUID;
      else if (o == "nodev") m.flags |= MS_NODEV;
      else if (o == "noexec") m.flags |= MS_NOEXEC;
      else if (o == "noatime") m.flags |= MS_NOATIME;
      else if (o == "nodiratime") m.flags |= MS_NODIRATIME;
      else if (o == "relatime") m.flags |= MS_RELATIME;
    }
    out.push_back(std::move(m));
  }
  return out;
}

bool is_inside(const fs::path& inner, const fs::path& outer) {
  const std::string a = inner.lexically_normal().string(), b = outer.lexically_normal().string();
  return a == b || (a.size() > b.size() && a.compare(0, b.size(), b) == 0 && (b.back() == '/' || a[b.size()] == '/'));
}

// Processes this user runs now (RLIMIT_NPROC counts them all, not just the sandbox's).
int processes_of(uid_t uid) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st;
    if (stat(e.path().c_str(), &st) == 0 && st.st_uid == uid) ++n;
  }
  return n;
}

void put(int fd, int kind, int value) {
  const int rec[2] = {kind, value};
  ssize_t r = write(fd, rec, sizeof rec);
  (void)r;
}

void write_file(const char* path, const char* text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t r = write(fd, text, strlen(text));
  (void)r;
  close(fd);
}

// Everything the child needs, prepared before fork.
struct ChildPlan {
  std::vector<MountPoint> mounts;
  std::string work, home, cwd, tmpfs_opts, uid_map, gid_map;
  bool hide_home = false, hide_cwd = false, root = false;
  std::vector<std::string> argv_s, envp_s;
  std::vector<char*> argv, envp;
  SandboxLimits lim;
  rlim_t nproc = 0;
};

// The program's process: drops root, sets the limits, runs python.
[[noreturn]] void run_program(const ChildPlan& p, int bits, int out_w, int info_w) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (p.root) {
    if (setgroups(0, nullptr) == 0 && setgid(kNobody) == 0 && setuid(kNobody) == 0) bits |= kAsNobody;
  }
  const struct { int res; rlim_t v; } lims[] = {
      {RLIMIT_CPU, static_cast<rlim_t>(p.lim.cpu_seconds)},
      {RLIMIT_AS, static_cast<rlim_t>(p.lim.address_space_bytes)},
      {RLIMIT_FSIZE, static_cast<rlim_t>(p.lim.file_bytes)},
      {RLIMIT_NPROC, p.nproc},
      {RLIMIT_NOFILE, static_cast<rlim_t>(p.lim.open_files)},
      {RLIMIT_CORE, 0},
  };
  bool ok = true;
  for (const auto& l : lims) {
    const struct rlimit r{l.v, l.v};
    if (setrlimit(l.res, &r) != 0) ok = false;
  }
  if (ok) bits |= kRlimits;
  put(info_w, kIsolation, bits);
  close(info_w);
  if (chdir(p.work.c_str()) != 0) _exit(126);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(out_w, 1);
  dup2(out_w, 2);
  execve(p.argv[0], p.argv.data(), p.envp.data());
  _exit(127);
}

[[noreturn]] void run_child(const ChildPlan& p, int out_w, int info_w) {
  // Only system calls from here: the parent may have other threads (OpenMP).
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int bits = 0;
  const int ns = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (p.root) {
    if (unshare(ns) == 0) bits |= kNet | kMountNs | kPidNs;
  } else if (unshare(CLONE_NEWUSER | ns) == 0) {
    bits |= kUserNs | kNet | kMountNs | kPidNs;
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", p.uid_map.c_str());
    write_file("/proc/self/gid_map", p.gid_map.c_str());
  }
  if (bits & kMountNs) {
    mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    bool all = true;
    for (const MountPoint& m : p.mounts)
      if (mount(nullptr, m.path.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | m.flags, nullptr) != 0) all = false;
    if (all) bits |= kReadOnly;
    if (mount("tmpfs", p.work.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfs_opts.c_str()) == 0) bits |= kTmpfsWork;
    if (p.hide_home && mount("tmpfs", p.home.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555") == 0)
      bits |= kHideHome;
    if (p.hide_cwd && mount("tmpfs", p.cwd.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555") == 0)
      bits |= kHideCwd;
  }
  const pid_t outer = getpid();
  const pid_t init = fork();  // with a PID namespace: its first process, which runs no user code
  if (init < 0) _exit(126);
  if (init == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != outer && !(bits & kPidNs)) _exit(126);  // the outer child is already gone
    // A /proc of this PID namespace: the program sees its own processes, not the host's.
    if ((bits & kPidNs) && (bits & kMountNs) &&
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, nullptr) == 0)
      bits |= kOwnProc;
    const pid_t prog = fork();
    if (prog < 0) _exit(126);
    if (prog == 0) run_program(p, bits, out_w, info_w);
    close(out_w);
    // Reap everything (orphans re-parent to a namespace's first process) until the
    // program itself ends; leaving then kills whatever it left behind.
    int status = 126 << 8;  // "exited 126" unless the program's own status comes in
    for (;;) {
      int st = 0;
      const pid_t w = waitpid(-1, &st, 0);
      if (w == prog) {
        status = st;
        break;
      }
      if (w < 0 && errno != EINTR) break;
    }
    put(info_w, kStatus, status);
    _exit(0);
  }
  close(out_w);
  put(info_w, kInnerPid, static_cast<int>(init));
  int st = 0;
  while (waitpid(init, &st, 0) < 0 && errno == EINTR) {
  }
  _exit(0);
}

}  // namespace

SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& lim, const std::string& python) {
  // A temporary directory: program.py (read-only to the child) and work/ (its tmpfs).
  const fs::path base = std::getenv("TMPDIR") && *std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string tmpl = (base / "teddy-sandbox-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw Error("sandbox: cannot create a temporary directory under " + base.string() + ": " + std::strerror(errno));
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  {
    std::ofstream f(dir / "program.py", std::ios::binary);
    f << program;
    if (!f) throw Error("sandbox: cannot write " + (dir / "program.py").string());
  }
  fs::create_directory(dir / "work");
  chmod(dir.c_str(), 0755);
  chmod((dir / "program.py").c_str(), 0644);
  chmod((dir / "work").c_str(), 01777);

  ChildPlan p;
  p.lim = lim;
  p.root = geteuid() == 0;
  p.mounts = mount_points();
  p.work = (dir / "work").string();
  p.tmpfs_opts = "size=" + std::to_string(lim.disk_bytes) + ",mode=1777";
  if (const char* h = std::getenv("HOME"); h && *h && fs::is_directory(h)) {
    p.home = fs::canonical(h).string();
    p.hide_home = p.home != "/" && !is_inside(dir, p.home);
  }
  std::error_code ec;
  p.cwd = fs::current_path(ec).string();
  // A run directory inside the home directory is hidden with it.
  const bool cwd_in_home = p.hide_home && is_inside(p.cwd, p.home);
  p.hide_cwd = !ec && p.cwd != "/" && !is_inside(dir, p.cwd) && !cwd_in_home;
  p.uid_map = "0 " + std::to_string(getuid()) + " 1";
  p.gid_map = "0 " + std::to_string(getgid()) + " 1";
  // As nobody the limit counts nobody's processes; otherwise this user's, which may be many.
  p.nproc = static_cast<rlim_t>(lim.processes) + static_cast<rlim_t>(p.root ? processes_of(kNobody) : processes_of(getuid()));
  p.argv_s = {python, "-I", "-B", (dir / "program.py").string()};
  p.envp_s = {"PATH=/usr/bin:/bin", "HOME=" + p.work, "TMPDIR=" + p.work, "LANG=C.UTF-8", "PYTHONHASHSEED=0"};
  for (std::string& s : p.argv_s) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  for (std::string& s : p.envp_s) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);

  int out_p[2], info_p[2];
  if (pipe2(out_p, O_CLOEXEC) != 0 || pipe2(info_p, O_CLOEXEC) != 0) throw Error(std::string("sandbox: pipe: ") + std::strerror(errno));
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t child = fork();
  if (child < 0) {
    for (int fd : {out_p[0], out_p[1], info_p[0], info_p[1]}) close(fd);
    throw Error(std::string("sandbox: fork: ") + std::strerror(errno));
  }
  if (child == 0) {
    close(out_p[0]);
    close(info_p[0]);
    run_child(p, out_p[1], info_p[1]);
  }
  setpgid(child, child);  // also done by the child: whichever runs first
  close(out_p[1]);
  close(info_p[1]);

  SandboxResult res;
  int bits = 0, inner = 0, status = 0;
  bool have_status = false, out_open = true, info_open = true;
  std::string info_buf;
  const auto deadline = t0 + std::chrono::duration<double>(lim.wall_seconds);
  auto kill_all = [&] {
    if (inner > 0) kill(inner, SIGKILL);  // the PID namespace's first process: the kernel kills the rest
    kill(-child, SIGKILL);
    kill(child, SIGKILL);
  };
  while (out_open || info_open) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      res.timed_out = true;
      kill_all();
      break;
    }
    const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    struct pollfd fds[2] = {{out_open ? out_p[0] : -1, POLLIN, 0}, {info_open ? info_p[0] : -1, POLLIN, 0}};
    if (poll(fds, 2, ms) < 0 && errno != EINTR) break;
    char buf[4096];
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = read(out_p[0], buf, sizeof buf);
      if (n <= 0) out_open = false;
      else if (res.output.size() < lim.output_bytes)
        res.output.append(buf, std::min(static_cast<size_t>(n), lim.output_bytes - res.output.size()));
    }
    if (info_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = read(info_p[0], buf, sizeof buf);
      if (n <= 0) info_open = false;
      else info_buf.append(buf, static_cast<size_t>(n));
      while (info_buf.size() >= 8) {
        int rec[2];
        std::memcpy(rec, info_buf.data(), 8);
        info_buf.erase(0, 8);
        if (rec[0] == kIsolation) bits |= rec[1];
        else if (rec[0] == kInnerPid) inner = rec[1];
        else if (rec[0] == kStatus) status = rec[1], have_status = true;
      }
      // The program is done once its status is in; output a leftover background
      // process still holds open must not keep teddy waiting.
      if (have_status) break;
    }
  }
  // Whatever is left (background processes without a PID namespace) goes too.
  kill_all();
  int cst = 0;
  while (waitpid(child, &cst, 0) < 0 && errno == EINTR) {
  }
  // Output written just before exit is still in the pipe.
  for (char buf[4096]; out_open;) {
    struct pollfd fd = {out_p[0], POLLIN, 0};
    if (poll(&fd, 1, 0) <= 0) break;
    const ssize_t n = read(out_p[0], buf, sizeof buf);
    if (n <= 0) break;
    if (res.output.size() < lim.output_bytes)
      res.output.append(buf, std::min(static_cast<size_t>(n), lim.output_bytes - res.output.size()));
  }
  close(out_p[0]);
  close(info_p[0]);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!res.timed_out && have_status) {
    if (WIFEXITED(status)) {
      res.exited = true;
      res.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      res.signal = WTERMSIG(status);
    }
  } else if (!res.timed_out) {
    res.signal = WIFSIGNALED(cst) ? WTERMSIG(cst) : 0;  // the sandbox itself failed
  }
  if (cwd_in_home && (bits & kHideHome)) bits |= kHideCwd;
  const std::pair<int, const char*> names[] = {{kUserNs, "userns"}, {kNet, "netns"}, {kMountNs, "mountns"},
                                               {kPidNs, "pidns"}, {kOwnProc, "own-proc"}, {kReadOnly, "readonly-mounts"},
                                               {kTmpfsWork, "tmpfs-work"}, {kHideHome, "home-hidden"},
                                               {kHideCwd, "cwd-hidden"}, {kAsNobody, "nobody"}, {kRlimits, "rlimits"}};
  for (const auto& [b, name] : names)
    if (bits & b) res.isolation += (res.isolation.empty() ? "" : " ") + std::string(name);
  return res;
}

}  // namespace teddy
