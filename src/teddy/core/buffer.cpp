#include "teddy/core/buffer.h"

#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"

namespace teddy {

void AlignedBuffer::Free::operator()(std::byte* p) const { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t bytes, const std::string& what) { resize(bytes, what); }

void AlignedBuffer::resize(size_t bytes, const std::string& what) {
  ptr_.reset();
  bytes_ = 0;
  if (bytes == 0) return;
  // Large buffers (parameters, gradients, moments, the activation arena) sit on 2 MiB
  // boundaries and ask for transparent huge pages: with 4 KiB pages the GEMMs' packing
  // and the streaming kernels miss the TLB on every page of a 150 MB operand. Kernels
  // that default THP to "madvise" (Debian's) give huge pages only to regions that ask.
  const bool huge = bytes >= kHugePageBytes;
  const size_t align = huge ? kHugePageBytes : kAlignBytes;
  void* p = std::aligned_alloc(align, align_up(bytes, align));
  if (!p) {
    // Named, with what the process may still use: past the memory check (or without
    // it) this is the buffer that did not fit.
    const MemoryBudget b = available_memory();
    throw Error("out of memory allocating " + (what.empty() ? std::string("a buffer") : what) + " (" +
                human_bytes(static_cast<double>(bytes)) + ", " + std::to_string(bytes) + " bytes); " +
                (std::isfinite(b.bytes) ? human_bytes(b.bytes) + " available (" + b.source + ")" : std::string("available memory unknown")));
  }
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, align_up(bytes, align), MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  ptr_.reset(static_cast<std::byte*>(p));
  bytes_ = bytes;
  zero();
}

void AlignedBuffer::zero() {
  if (bytes_ == 0) return;
  // Parallel first touch: pages land near the threads that use them.
  std::byte* p = ptr_.get();
  const size_t n = bytes_;
#pragma omp parallel for if (n > (1u << 22)) schedule(static)
  for (size_t i = 0; i < n; i += (1u << 16)) std::memset(p + i, 0, (n - i < (1u << 16)) ? n - i : (1u << 16));
}

void Arena::overflow() const {
  throw Error("arena overflow: " + std::to_string(used_) + " bytes requested, " +
              std::to_string(buf_.bytes()) + " allocated (the counting pass and the real pass differ)");
}

}  // namespace teddy
