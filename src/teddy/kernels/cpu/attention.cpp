// FlashAttention forward and backward on the CPU. Tiles of kFlashBlock query rows
// by kFlashBlock key columns live in per-thread scratch (L2-resident); the T x T
// score matrix never exists. Forward: online softmax (running max m and sum l per
// query, partial output rescaled when m grows), O and lse written once. Backward:
// S and P recomputed tile by tile from lse, D = rowsum(dO * O) precomputed, dK/dV
// owned by the task of their key block, dQ accumulated per task or per thread.
#include "teddy/kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "teddy/core/buffer.h"
#include "teddy/core/error.h"
#include "teddy/kernels/cpu/attention_tile.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/attention.h"

namespace teddy::kernels::cpu {
namespace {

using namespace tile;
constexpr int kB = kFlashBlock;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
static_assert(kB % kLanes == 0);

inline int round16(int n) { return (n + kLanes - 1) / kLanes * kLanes; }

struct Dims {
  int B, T, NH, NKV, HS, G, HSp, nblk;
  int64_t R, C;  // row strides of qkv (B,T,(NH+2*NKV)*HS) and out (B,T,NH*HS)
  float scale;
};

Dims make_dims(int B, int T, int NH, int NKV, int HS) {
  ref::attention_check_dims(B, T, NH, NKV, HS);
  Dims d{};
  d.B = B; d.T = T; d.NH = NH; d.NKV = NKV; d.HS = HS;
  d.G = NH / NKV;
  d.HSp = round16(HS);  // tiles padded so every row is whole vectors
  d.nblk = (T + kB - 1) / kB;
  d.R = static_cast<int64_t>(NH + 2 * NKV) * HS;
  d.C = static_cast<int64_t>(NH) * HS;
  d.scale = 1.0f / std::sqrt(static_cast<float>(HS));
  return d;
}

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// ---- masks ------------------------------------------------------------------

struct SegRange { int32_t lo = 0, hi = 0; };
SegRange seg_range(const int32_t* seg_b, int i0, int n) {
  SegRange r;
  if (!seg_b) return r;
  r.lo = r.hi = seg_b[i0];
  for (int i = 1; i < n; ++i) { r.lo = std::min(r.lo, seg_b[i0 + i]); r.hi = std::max(r.hi, seg_b[i0 + i]); }
  return r;
}

enum class TileMask { none, partial, dead };

// Queries [i0, i0+nr) against keys [j0, j0+nc), j0 <= i0 + nr - 1.
TileMask classify(const int32_t* seg_b, SegRange q, SegRange k, int i0, int j0, int nc) {
  if (seg_b && (k.hi < q.lo || k.lo > q.hi)) return TileMask::dead;  // no document in common
  if (j0 + nc - 1 > i0) return TileMask::partial;                      // crosses the diagonal
  if (seg_b && !(q.lo == q.hi && k.lo == k.hi && q.lo == k.lo)) return TileMask::partial;
  return TileMask::none;
}

inline bool visible(const int32_t* seg_b, int j, int i) { return j <= i && (!seg_b || seg_b[j] == seg_b[i]); }

// ---- forward ----------------------------------------------------------------

struct FwdTiles {
  float* qt;  // (HSp, kB) Q^T of the query block, pre-scaled by 1/sqrt(HS)
  float* k;   // (kB, HSp) key block
  float* v;   // (kB, HSp) value block
  float* st;  // (kB, kB)  S^T then P^T: rows keys, columns queries
  float* o;   // (kB, HSp) unnormalised output
  float* m;   // (kB)      running max per query
  float* l;   // (kB)      running sum per query
};

size_t fwd_tile_floats(int HSp) { return static_cast<size_t>(4) * kB * HSp + kB * kB + 2 * kB; }

FwdTiles carve_fwd(float* p, int HSp) {
  FwdTiles w;
  w.qt = p; p += HSp * kB;
  w.k = p; p += kB * HSp;
  w.v = p; p += kB * HSp;
  w.st = p; p += kB * kB;
  w.o = p; p += kB * HSp;
  w.m = p; p += kB;
  w.l = p;
  return w;
}

// Copies rows [j0, j0+n) of one head (row stride R) into a (kB, HSp) tile, zero padded.
void copy_rows(float* dst, const float* src, int64_t R, int j0, int n, int HS, int HSp, float mul = 1.0f) {
  for (int j = 0; j < n; ++j) {
    const float* s = src + static_cast<int64_t>(j0 + j) * R;
    float* t = dst + static_cast<int64_t>(j) * HSp;
    for (int c = 0; c < HS; ++c) t[c] = s[c] * mul;
    for (int c = HS; c < HSp; ++c) t[c] = 0.0f;
  }
}

// Copies rows [j0, j0+n) of one head transposed into a (HS, kB) tile; columns >= n zeroed.
void copy_rows_t(float* dst, const float* src, int64_t R, int j0, int n, int HS, float mul = 1.0f) {
  for (int c = 0; c < HS; ++c) std::fill(dst + c * kB + n, dst + (c + 1) * kB, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float* s = src + static_cast<int64_t>(j0 + j) * R;
    for (int c = 0; c < HS; ++c) dst[c * kB + j] = s[c] * mul;
  }
}

// One (b, h, query block): all key blocks up to the diagonal, online softmax.
void forward_query_block(const Dims& d, float* out, float* lse, const float* qkv, const int32_t* seg, int b, int h,
                         int qb, const FwdTiles& w) {
  const int i0 = qb * kB, nr = std::min(kB, d.T - i0), g = h / d.G, HS = d.HS, HSp = d.HSp;
  const float* base = qkv + static_cast<int64_t>(b) * d.T * d.R;
  const float* qp = base + static_cast<int64_t>(h) * HS;
  const float* kp = base + static_cast<int64_t>(d.NH + g) * HS;
  const float* vp = base + static_cast<int64_t>(d.NH + d.NKV + g) * HS;
  const int32_t* seg_b = seg ? seg + static_cast<int64_t>(b) * d.T : nullptr;

  copy_rows_t(w.qt, qp, d.R, i0, nr, HS, d.scale);  // scores come out already scaled
  std::fill(w.o, w.o + static_cast<size_t>(kB) * HSp, 0.0f);
  std::fill(w.m, w.m + kB, kNegInf);
  std::fill(w.l, w.l + kB, 0.0f);
  const SegRange qs = seg_range(seg_b, i0, nr);

  for (int kb = 0; kb <= qb; ++kb) {
    const int j0 = kb * kB, nc = std::min(kB, d.T - j0);
    const TileMask tm = classify(seg_b, qs, seg_range(seg_b, j0, nc), i0, j0, nc);
    if (tm == TileMask::dead) continue;
    copy_rows(w.k, kp, d.R, j0, nc, HS, HSp);
    copy_rows(w.v, vp, d.R, j0, nc, HS, HSp);
    gemm<false>(w.st, kB, w.k, HSp, 1, w.qt, kB, nc, kB, HS);  // S^T (nc, kB) = K Q^T
    if (tm == TileMask::partial) {
      for (int j = 0; j < nc; ++j) {
        float* s = w.st + j * kB;
        for (int i = 0; i < nr; ++i) s[i] = visible(seg_b, j0 + j, i0 + i) ? s[i] : kNegInf;
      }
    }
    // Column (= query) max over this block's keys, vectorised across queries.
    for (int c = 0; c < kB; c += kLanes) {
      v16 mx = load(w.st + c);
      for (int j = 1; j < nc; ++j) mx = vmax(mx, load(w.st + j * kB + c));
      const v16 m_old = load(w.m + c);
      const v16 m_new = vmax(m_old, mx);
      // A query with no visible key yet keeps m = -inf; subtract 0 so exp gives 0, not NaN.
      const v16 m_use = (v16)((v16i)m_new & (m_new != splat(kNegInf)));
      const v16 alpha = exp16(m_old - m_use);
      v16 sum{};
      for (int j = 0; j < nc; ++j) {
        const v16 p = exp16(load(w.st + j * kB + c) - m_use);
        store(w.st + j * kB + c, p);
        sum += p;
      }
      store(w.l + c, fma(load(w.l + c), alpha, sum));
      store(w.m + c, m_new);
      for (int i = 0; i < kLanes; ++i) {
        if (alpha[i] == 1.0f) continue;
        float* o = w.o + (c + i) * HSp;
        const v16 a = splat(alpha[i]);
        for (int x = 0; x < HSp; x += kLanes) store(o + x, load(o + x) * a);
      }
    }
    gemm<true>(w.o, HSp, w.st, 1, kB, w.v, HSp, nr, HSp, nc);  // O += P V
  }

  float* lse_h = lse + (static_cast<int64_t>(b) * d.NH + h) * d.T;
  for (int r = 0; r < nr; ++r) {
    const int i = i0 + r;
    const float inv = 1.0f / w.l[r];  // >= 1: a query always sees itself
    float* o = out + (static_cast<int64_t>(b) * d.T + i) * d.C + static_cast<int64_t>(h) * HS;
    for (int c = 0; c < HS; ++c) o[c] = w.o[r * HSp + c] * inv;
    lse_h[i] = w.m[r] + std::log(w.l[r]);
  }
}

// ---- backward ---------------------------------------------------------------

struct BwdTiles {
  float* q;    // (kB, HSp) query block, pre-scaled
  float* dO;   // (kB, HSp) dout block
  float* k;    // (kB, HSp) key block
  float* kt;   // (HS, kB)  K^T
  float* vt;   // (HS, kB)  V^T
  float* s;    // (kB, kB)  S then P: rows queries, columns keys
  float* dp;   // (kB, kB)  dP then dS
  float* dk;   // (kB, HSp) dK of the key block (accumulated over query heads and blocks)
  float* dv;   // (kB, HSp) dV likewise
  float* dq;   // (G, T, HSp) unscaled dQ of one (b, kv head)'s query heads
};

size_t bwd_tile_floats(const Dims& d) {
  return static_cast<size_t>(7) * kB * d.HSp + static_cast<size_t>(2) * kB * kB +
         static_cast<size_t>(d.G) * d.T * d.HSp;
}

BwdTiles carve_bwd(float* p, const Dims& d) {
  const size_t t = static_cast<size_t>(kB) * d.HSp;
  BwdTiles w;
  w.q = p; p += t;
  w.dO = p; p += t;
  w.k = p; p += t;
  w.kt = p; p += t;
  w.vt = p; p += t;
  w.dk = p; p += t;
  w.dv = p; p += t;
  w.s = p; p += kB * kB;
  w.dp = p; p += kB * kB;
  w.dq = p;
  return w;
}

size_t bwd_shared_floats(int B, int T, int NH) {
  return align_up(static_cast<size_t>(B) * NH * T, kLanes);  // D terms
}

// One (b, kv head g, key block kb): dK, dV of the block from every query head of the
// group and every query block at or below the diagonal; dQ contributions into w.dq.
void backward_key_block(const Dims& d, float* dqkv, const float* dout, const float* qkv, const float* lse,
                        const float* Dterm, const int32_t* seg, int b, int g, int kb, const BwdTiles& w) {
  const int j0 = kb * kB, nc = std::min(kB, d.T - j0), HS = d.HS, HSp = d.HSp;
  const float* base = qkv + static_cast<int64_t>(b) * d.T * d.R;
  const float* kp = base + static_cast<int64_t>(d.NH + g) * HS;
  const float* vp = base + static_cast<int64_t>(d.NH + d.NKV + g) * HS;
  const int32_t* seg_b = seg ? seg + static_cast<int64_t>(b) * d.T : nullptr;

  copy_rows(w.k, kp, d.R, j0, nc, HS, HSp);
  copy_rows_t(w.kt, kp, d.R, j0, nc, HS);
  copy_rows_t(w.vt, vp, d.R, j0, nc, HS);
  std::fill(w.dk, w.dk + static_cast<size_t>(kB) * HSp, 0.0f);
  std::fill(w.dv, w.dv + static_cast<size_t>(kB) * HSp, 0.0f);
  const SegRange ks = seg_range(seg_b, j0, nc);

  for (int hh = 0; hh < d.G; ++hh) {
    const int h = g * d.G + hh;
    const float* qp = base + static_cast<int64_t>(h) * HS;
    const float* dop = dout + static_cast<int64_t>(b) * d.T * d.C + static_cast<int64_t>(h) * HS;
    const float* lse_h = lse + (static_cast<int64_t>(b) * d.NH + h) * d.T;
    const float* D_h = Dterm + (static_cast<int64_t>(b) * d.NH + h) * d.T;
    for (int qb = kb; qb < d.nblk; ++qb) {
      const int i0 = qb * kB, nr = std::min(kB, d.T - i0);
      const TileMask tm = classify(seg_b, seg_range(seg_b, i0, nr), ks, i0, j0, nc);
      if (tm == TileMask::dead) continue;
      copy_rows(w.q, qp, d.R, i0, nr, HS, HSp, d.scale);
      copy_rows(w.dO, dop, d.C, i0, nr, HS, HSp);
      gemm<false>(w.s, kB, w.q, HSp, 1, w.kt, kB, nr, kB, HS);    // S = Q K^T (scaled)
      gemm<false>(w.dp, kB, w.dO, HSp, 1, w.vt, kB, nr, kB, HS);  // dP = dO V^T
      for (int r = 0; r < nr; ++r) {
        const int i = i0 + r;
        float* s = w.s + r * kB;
        float* dp = w.dp + r * kB;
        if (tm == TileMask::partial)
          for (int j = 0; j < nc; ++j) s[j] = visible(seg_b, j0 + j, i) ? s[j] : kNegInf;
        const v16 L = splat(lse_h[i]), D = splat(D_h[i]);
        for (int c = 0; c < kB; c += kLanes) {  // columns >= nc are never read below
          const v16 p = exp16(load(s + c) - L);
          store(s + c, p);
          store(dp + c, p * (load(dp + c) - D));  // dS = P * (dP - D)
        }
      }
      gemm<true>(w.dv, HSp, w.s, 1, kB, w.dO, HSp, nc, HSp, nr);  // dV += P^T dO
      gemm<true>(w.dk, HSp, w.dp, 1, kB, w.q, HSp, nc, HSp, nr);  // dK += dS^T (scale Q)
      gemm<true>(w.dq + (static_cast<int64_t>(hh) * d.T + i0) * HSp, HSp, w.dp, kB, 1, w.k, HSp, nr, HSp,
                 nc);  // dQ += dS K (scaled when added to dqkv)
    }
  }

  float* dbase = dqkv + static_cast<int64_t>(b) * d.T * d.R;
  for (int j = 0; j < nc; ++j) {
    float* dk = dbase + static_cast<int64_t>(j0 + j) * d.R + static_cast<int64_t>(d.NH + g) * HS;
    float* dv = dbase + static_cast<int64_t>(j0 + j) * d.R + static_cast<int64_t>(d.NH + d.NKV + g) * HS;
    for (int c = 0; c < HS; ++c) {
      dk[c] += w.dk[j * HSp + c];
      dv[c] += w.dv[j * HSp + c];
    }
  }
}

// dqkv's query rows of (b, g) += scale * sum of the `n` dQ accumulators (in order), rows [r0, r1)
// of the (G*T) stacked query rows.
void add_dq(const Dims& d, float* dqkv, const float* const* dq, int n, int b, int g, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const int hh = static_cast<int>(r / d.T), i = static_cast<int>(r % d.T);
    float* dst = dqkv + (static_cast<int64_t>(b) * d.T + i) * d.R + static_cast<int64_t>(g * d.G + hh) * d.HS;
    for (int c = 0; c < d.HS; ++c) {
      float s = dq[0][r * d.HSp + c];
      for (int t = 1; t < n; ++t) s += dq[t][r * d.HSp + c];
      dst[c] += d.scale * s;
    }
  }
}

bool use_by_group(const Dims& d, int threads, FlashBackwardSplit split) {
  if (split != FlashBackwardSplit::automatic) return split == FlashBackwardSplit::by_group;
  const int pairs = d.B * d.NKV;
  if (threads <= 1) return true;
  const int rounds = (pairs + threads - 1) / threads;
  const double busy = static_cast<double>(pairs) / (static_cast<double>(rounds) * threads);
  return busy >= 0.9 || d.nblk < 2 * threads;  // few key blocks: spreading them gains nothing
}

void check_scratch(const char* what, size_t have, size_t need) {
  if (have < need)
    throw Error(std::string(what) + ": scratch of " + std::to_string(have) + " floats is too small (need " +
                std::to_string(need) + ")");
}

}  // namespace

size_t attention_flash_forward_scratch_floats(int T, int NH, int NKV, int HS, int threads) {
  const Dims d = make_dims(1, T, NH, NKV, HS);
  return fwd_tile_floats(d.HSp) * static_cast<size_t>(resolve_threads(threads));
}

size_t attention_flash_backward_scratch_floats(int B, int T, int NH, int NKV, int HS, int threads) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  return bwd_shared_floats(B, T, NH) + bwd_tile_floats(d) * static_cast<size_t>(resolve_threads(threads));
}

void attention_flash_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                             int NKV, int HS, float* scratch, size_t scratch_floats) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  const int threads = omp_get_max_threads();
  const size_t per_thread = fwd_tile_floats(d.HSp);
  check_scratch("attention_flash_forward", scratch_floats, per_thread * threads);
  const int64_t bh = static_cast<int64_t>(B) * NH, tasks = bh * d.nblk;
#pragma omp parallel num_threads(threads)
  {
    const FwdTiles w = carve_fwd(scratch + per_thread * omp_get_thread_num(), d.HSp);
    // Longest query blocks (most key blocks) first, for a short tail.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int qb = d.nblk - 1 - static_cast<int>(t / bh);
      const int64_t x = t % bh;
      forward_query_block(d, out, lse, qkv, seg, static_cast<int>(x / NH), static_cast<int>(x % NH), qb, w);
    }
  }
}

void attention_flash_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                              const float* lse, const int32_t* seg, int B, int T, int NH, int NKV, int HS,
                              float* scratch, size_t scratch_floats, FlashBackwardSplit split) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  const int threads = omp_get_max_threads();
  const size_t shared = bwd_shared_floats(B, T, NH), per_thread = bwd_tile_floats(d);
  check_scratch("attention_flash_backward", scratch_floats, shared + per_thread * threads);
  float* Dterm = scratch;  // (B, NH, T)
  const bool by_group = use_by_group(d, threads, split);
  const int pairs = B * NKV;
  const size_t dq_floats = static_cast<size_t>(d.G) * T * d.HSp;
  std::vector<const float*> parts(threads);  // each thread's dQ accumulator
  for (int t = 0; t < threads; ++t) parts[t] = carve_bwd(scratch + shared + per_thread * t, d).dq;

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const BwdTiles w = carve_bwd(scratch + shared + per_thread * tid, d);

    // D[b,h,i] = dO . O, one row term per query.
#pragma omp for schedule(static)
    for (int64_t r = 0; r < static_cast<int64_t>(B) * T; ++r) {
      const int b = static_cast<int>(r / T), i = static_cast<int>(r % T);
      for (int h = 0; h < NH; ++h) {
        const float* o = out + r * d.C + static_cast<int64_t>(h) * HS;
        const float* dO = dout + r * d.C + static_cast<int64_t>(h) * HS;
        float s = 0;
        for (int c = 0; c < HS; ++c) s += o[c] * dO[c];
        Dterm[(static_cast<int64_t>(b) * NH + h) * T + i] = s;
      }
    }

    if (by_group) {
#pragma omp for schedule(dynamic, 1)
      for (int p = 0; p < pairs; ++p) {
        const int b = p / NKV, g = p % NKV;
        std::fill(w.dq, w.dq + dq_floats, 0.0f);
        for (int kb = 0; kb < d.nblk; ++kb) backward_key_block(d, dqkv, dout, qkv, lse, Dterm, seg, b, g, kb, w);
        const float* dq = w.dq;
        add_dq(d, dqkv, &dq, 1, b, g, 0, static_cast<int64_t>(d.G) * T);
      }
    } else {
      for (int p = 0; p < pairs; ++p) {
        const int b = p / NKV, g = p % NKV;
        std::fill(w.dq, w.dq + dq_floats, 0.0f);
        // Snake order (0..n-1, n-1..0, ...): early key blocks carry the most query blocks.
        for (int round = 0; round * nth < d.nblk; ++round) {
          const int kb = round * nth + (round % 2 == 0 ? tid : nth - 1 - tid);
          if (kb < d.nblk) backward_key_block(d, dqkv, dout, qkv, lse, Dterm, seg, b, g, kb, w);
        }
#pragma omp barrier
        // Sum the per-thread dQ partials in thread order: deterministic for a given thread count.
        const int64_t rows = static_cast<int64_t>(d.G) * T;
        const int64_t chunk = (rows + nth - 1) / nth;
        add_dq(d, dqkv, parts.data(), nth, b, g, std::min(rows, chunk * tid), std::min(rows, chunk * (tid + 1)));
#pragma omp barrier
      }
    }
  }
}

// ---- ops.inc entry points: scratch allocated per call ---------------------------

void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH, int NKV,
                       int HS) {
  const size_t n = attention_flash_forward_scratch_floats(T, NH, NKV, HS);
  AlignedBuffer scratch(n * sizeof(float));
  attention_flash_forward(out, lse, qkv, seg, B, T, NH, NKV, HS, scratch.as<float>(), n);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int32_t* seg, int B, int T, int NH, int NKV, int HS) {
  const size_t n = attention_flash_backward_scratch_floats(B, T, NH, NKV, HS);
  AlignedBuffer scratch(n * sizeof(float));
  attention_flash_backward(dqkv, dout, qkv, out, lse, seg, B, T, NH, NKV, HS, scratch.as<float>(), n);
}

}  // namespace teddy::kernels::cpu
