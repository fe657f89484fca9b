// Token (+ learned position) embedding, fast path.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // elements; below this a thread team costs more than it saves
constexpr int kChannelChunk = 16;          // one cache line of floats: threads never share a line
}  // namespace

void encoder_forward(float* out, const int32_t* tokens, const int32_t* pos, const float* wte,
                     const float* wpe, int N, int C) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * C >= kParallelMin)
  for (int i = 0; i < N; ++i) {
    const float* te = wte + static_cast<int64_t>(tokens[i]) * C;
    float* o = out + static_cast<int64_t>(i) * C;
    if (wpe) {
      const float* pe = wpe + static_cast<int64_t>(pos[i]) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) o[c] = te[c] + pe[c];
    } else {
      std::copy(te, te + C, o);
    }
  }
}

// Several rows may share a token (or a position), so rows cannot be split across
// threads without races. Instead each thread owns a slice of channels (whole cache
// lines) and walks all rows in order: race-free, and every element receives its
// additions in row order, so the result is bitwise identical to the serial
// reference for any thread count.
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                      const int32_t* pos, int N, int C) {
  const int n_chunks = (C + kChannelChunk - 1) / kChannelChunk;
#pragma omp parallel if (static_cast<int64_t>(N) * C >= kParallelMin)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int c0 = std::min(C, static_cast<int>(static_cast<int64_t>(n_chunks) * t / nt) * kChannelChunk);
    const int c1 = std::min(C, static_cast<int>(static_cast<int64_t>(n_chunks) * (t + 1) / nt) * kChannelChunk);
    if (c0 < c1) {
      for (int i = 0; i < N; ++i) {
        const float* d = dout + static_cast<int64_t>(i) * C;
        float* gt = dwte + static_cast<int64_t>(tokens[i]) * C;
#pragma omp simd
        for (int c = c0; c < c1; ++c) gt[c] += d[c];
        if (dwpe) {
          float* gp = dwpe + static_cast<int64_t>(pos[i]) * C;
#pragma omp simd
          for (int c = c0; c < c1; ++c) gp[c] += d[c];
        }
      }
    }
  }
}

}  // namespace teddy::kernels::cpu
