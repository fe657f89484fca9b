#include "teddy/distributed/resident_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "teddy/core/error.h"

namespace teddy::dist {

namespace {

size_t page_size() {
  static const size_t ps = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return ps;
}

void release(float* p, size_t n) {
  if (n == 0) return;
  const size_t ps = page_size();
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n * sizeof(float);
  const uintptr_t pb = (b + ps - 1) / ps * ps, pe = e / ps * ps;
  if (pb >= pe) {
    std::memset(p, 0, n * sizeof(float));
    return;
  }
  std::memset(p, 0, pb - b);
  std::memset(reinterpret_cast<void*>(pe), 0, e - pe);
  if (madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED) != 0)
    std::memset(reinterpret_cast<void*>(pb), 0, pe - pb);  // still correct, just not freed
}

}  // namespace

void release_range(float* base, Range r, Range keep) {
  const size_t a = r.begin, b = std::min(r.end, std::max(keep.begin, r.begin));
  if (b > a) release(base + a, b - a);
  const size_t c = std::max(r.begin, std::min(keep.end, r.end));
  if (r.end > c && c >= keep.end) release(base + c, r.end - c);
}

size_t resident_bytes(const void* p, size_t bytes) {
  if (bytes == 0) return 0;
  const size_t ps = page_size();
  const uintptr_t b = reinterpret_cast<uintptr_t>(p) / ps * ps;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes + ps - 1) / ps * ps;
  std::vector<unsigned char> v((e - b) / ps);
  if (mincore(reinterpret_cast<void*>(b), e - b, v.data()) != 0) throw Error("mincore failed");
  size_t n = 0;
  for (unsigned char x : v) n += x & 1;
  return n * ps;
}

}  // namespace teddy::dist
