#include "teddy/model/kv_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

namespace teddy {

void kv_attention_forward(float* out, const float* q, int q_stride, const float* k, const float* v,
                          int kv_stride, int n, int start, int NH, int NKV, int HS, float* scratch,
                          int scratch_stride, int n_threads) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int group = NH / NKV;
  const int units = n * NH;
#pragma omp parallel num_threads(std::max(1, std::min(n_threads, units)))
  {
    float* score = scratch + static_cast<size_t>(omp_get_thread_num()) * scratch_stride;
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < units; ++u) {
      const int i = u / NH, h = u % NH, g = h / group;
      const int len = start + i + 1;  // causal: positions 0 .. start+i
      const float* qi = q + static_cast<size_t>(i) * q_stride + static_cast<size_t>(h) * HS;
      float mx = -INFINITY;
      for (int j = 0; j < len; ++j) {
        const float* kj = k + static_cast<size_t>(j) * kv_stride + static_cast<size_t>(g) * HS;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < HS; ++d) s += qi[d] * kj[d];
        s *= scale;
        score[j] = s;
        mx = std::max(mx, s);
      }
      float sum = 0.0f;
      for (int j = 0; j < len; ++j) {
        score[j] = std::exp(score[j] - mx);
        sum += score[j];
      }
      const float inv = 1.0f / sum;
      float* oi = out + static_cast<size_t>(i) * NH * HS + static_cast<size_t>(h) * HS;
      std::fill(oi, oi + HS, 0.0f);
      for (int j = 0; j < len; ++j) {
        const float p = score[j] * inv;
        const float* vj = v + static_cast<size_t>(j) * kv_stride + static_cast<size_t>(g) * HS;
#pragma omp simd
        for (int d = 0; d < HS; ++d) oi[d] += p * vj[d];
      }
    }
  }
}

}  // namespace teddy
