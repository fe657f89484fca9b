// Before OpenBLAS loads: enough address space for its buffer, or a clear error.
//
// OpenBLAS's library constructor (gotoblas_init -> blas_thread_init ->
// blas_memory_alloc) mallocs one GEMM buffer per thread, BUFFER_SIZE + a page each:
// 128 MiB + 4 KiB in Debian's 0.3.21 for x86_64 (measured: malloc(134221824) in the
// hung process), for as many threads as OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or
// OMP_NUM_THREADS say, else one per CPU, at most one per CPU. When one fails it
// retries forever at 100% CPU (memory.c's allocation loop has no way out). So under
// `ulimit -v` (RLIMIT_AS) every teddy command hung before main() printed anything:
// the "generate or pretrain under ulimit -v 400 MB hangs" (measured on a
// 2-CPU machine: 53 MiB mapped at start + 2 x 128 MiB, hung below ~316 MB; on a
// 64-CPU node the constructor alone reserves 8 GiB of address space).
//
// main() runs too late, and so does any constructor of ours: shared libraries'
// constructors run first. Only the executable's .preinit_array runs before them
// (ELF gABI; glibc's _dl_init calls it first). So this check lives there, and uses
// only system calls and the environment it is handed (libc's own initialisers have
// not all run yet): RLIMIT_AS, the mapped size (/proc/self/statm) and OpenBLAS's
// thread count; with less than the buffers plus a margin left, it says so on stderr
// and exits 1.
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace {

// OpenBLAS's first buffer (BUFFER_SIZE + a page) plus room for malloc's own
// bookkeeping and teddy's start (the memory check, where a command has one, judges the
// rest with the real figures).
constexpr uint64_t kBlasBufferBytes = (uint64_t{128} << 20) + 4096;
constexpr uint64_t kMarginBytes = uint64_t{16} << 20;

void put(int fd, const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  while (n > 0) {
    const ssize_t w = ::write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void put_mb(int fd, uint64_t bytes) {
  char buf[24];
  int i = sizeof buf - 1;
  buf[i] = '\0';
  uint64_t mb = (bytes + (uint64_t{1} << 20) - 1) >> 20;
  do {
    buf[--i] = static_cast<char>('0' + mb % 10);
    mb /= 10;
  } while (mb > 0 && i > 0);
  put(fd, buf + i);
  put(fd, " MiB");
}

// Pages mapped now (the first field of /proc/self/statm), or 0 when unreadable.
uint64_t mapped_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  uint64_t pages = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pages = pages * 10 + static_cast<uint64_t>(buf[i] - '0');
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// A positive integer environment variable's value, else 0.
uint64_t env_count(char** envp, const char* name) {
  for (char** e = envp; e && *e; ++e) {
    const char* p = *e;
    const char* n = name;
    while (*n && *p == *n) ++p, ++n;
    if (*n || *p != '=') continue;
    uint64_t v = 0;
    for (++p; *p >= '0' && *p <= '9' && v < 100000; ++p) v = v * 10 + static_cast<uint64_t>(*p - '0');
    return v;
  }
  return 0;
}

// The threads OpenBLAS's constructor allocates a buffer for (blas_get_cpu_number).
uint64_t blas_threads(char** envp) {
  cpu_set_t set;
  uint64_t cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<uint64_t>(CPU_COUNT(&set)) : 1;
  if (cpus == 0) cpus = 1;
  uint64_t n = 0;
  for (const char* name : {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"})
    if (n == 0) n = env_count(envp, name);
  return n == 0 || n > cpus ? cpus : n;
}

void check_address_space(int, char**, char** envp) {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  const uint64_t limit = rl.rlim_cur, used = mapped_bytes(), threads = blas_threads(envp);
  const uint64_t need = threads * kBlasBufferBytes + kMarginBytes;
  if (used == 0 || (limit > used && limit - used >= need)) return;
  put(2, "teddy: error: ulimit -v (RLIMIT_AS) is ");
  put_mb(2, limit);
  put(2, " and loading teddy's libraries already takes ");
  put_mb(2, used);
  put(2, " of address space; OpenBLAS reserves ");
  put_mb(2, kBlasBufferBytes);
  put(2, " per thread while it loads (");
  char t[24];
  int i = sizeof t - 1;
  t[i] = '\0';
  uint64_t x = threads;
  do {
    t[--i] = static_cast<char>('0' + x % 10);
    x /= 10;
  } while (x > 0 && i > 0);
  put(2, t + i);
  put(2, threads == 1 ? " thread" : " threads");
  put(2, ": OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS, else one per CPU) and waits forever when it cannot: "
         "raise ulimit -v to at least ");
  put_mb(2, used + need);
  put(2, " (more for the run itself), set fewer threads, or limit memory with the cgroup (memory.max: it "
         "counts what is used, not what is reserved) instead\n");
  ::_exit(1);
}

}  // namespace

// Runs before any shared library's constructor (OpenBLAS's included).
__attribute__((section(".preinit_array"), used)) void (*const teddy_address_space_preflight)(int, char**, char**) =
    &check_address_space;
