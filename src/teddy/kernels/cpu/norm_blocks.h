#pragma once
// Deterministic parameter-gradient reduction for the row-wise norms' backward.
// Rows are cut into a fixed number of blocks that does not depend on the thread
// count; each block sums its rows into its own partial (k vectors of C floats), and
// the partials are then added in block order. So dweight/dbias are bitwise the same
// for any OMP_NUM_THREADS and on every run.
#include <algorithm>
#include <cstdint>
#include <memory>

namespace teddy::kernels::cpu {

struct NormBlocks {
  static constexpr int kMaxBlocks = 64;  // divides the usual thread counts (1, 2, 4, ... 64)

  int n_blocks;
  int rows_per_block;
  // Scratch of n_blocks * k * C floats (<= 64 * 2 * 768 * 4 B = 384 KiB at GPT-2 124M),
  // left uninitialised (each block zeroes its own partial). It is the calling thread's
  // buffer, grown when needed and kept: a fresh 384 KiB allocation per call is an
  // mmap/munmap plus ~100 page faults, every norm backward of every step.
  float* partial;

  NormBlocks(int N, int C, int k)
      : n_blocks(std::max(1, std::min(N, kMaxBlocks))),
        rows_per_block((N + n_blocks - 1) / n_blocks),
        partial(scratch(static_cast<size_t>(n_blocks) * k * C)) {}

  int row_begin(int b, int N) const { return std::min(N, b * rows_per_block); }
  int row_end(int b, int N) const { return std::min(N, (b + 1) * rows_per_block); }

 private:
  static float* scratch(size_t floats) {
    thread_local std::unique_ptr<float[]> buf;
    thread_local size_t cap = 0;
    if (floats > cap) {
      buf = std::make_unique_for_overwrite<float[]>(floats);
      cap = floats;
    }
    return buf.get();
  }
};

}  // namespace teddy::kernels::cpu
