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

#pragma GCC diagnostic ignored "-Wpsabi"  // see attention_tile.h

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

// ---- packing -----------------------------------------------------------------

// One row of a head, times mul, into a zero-padded row of HSp floats.
inline void pack_row(float* dst, const float* src, int HS, int HSp, float mul = 1.0f) {
  for (int c = 0; c < HS; ++c) dst[c] = src[c] * mul;
  for (int c = HS; c < HSp; ++c) dst[c] = 0.0f;
}

// x . y, 16 lanes at a time (a scalar loop would be one long dependency chain).
inline float dot(const float* x, const float* y, int n) {
  v16 acc{};
  int c = 0;
  for (; c + kLanes <= n; c += kLanes) acc = fma(load(x + c), load(y + c), acc);
  float s = hsum(acc);
  for (; c < n; ++c) s += x[c] * y[c];
  return s;
}

// Rows [j0, j0+n) of one head, transposed into a (HS, kB) tile; columns >= n zeroed.
void pack_rows_t(float* dst, const float* src, int64_t stride, int j0, int n, int HS) {
  for (int c = 0; c < HS; ++c) std::fill(dst + c * kB + n, dst + (c + 1) * kB, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float* s = src + static_cast<int64_t>(j0 + j) * stride;
    for (int c = 0; c < HS; ++c) dst[c * kB + j] = s[c];
  }
}

// ---- forward ----------------------------------------------------------------

struct FwdTiles {
  float* qt;  // (HSp, kB) Q^T of the query block, pre-scaled by 1/sqrt(HS)
  float* st;  // (kB, kB)  S^T then P^T: rows keys, columns queries
  float* o;   // (kB, HSp) unnormalised output
  float* m;   // (kB)      running max per query
  float* l;   // (kB)      running sum per query
};

size_t fwd_tile_floats(int HSp) { return static_cast<size_t>(2) * kB * HSp + kB * kB + 2 * kB; }

FwdTiles carve_fwd(float* p, int HSp) {
  FwdTiles w;
  w.qt = p; p += HSp * kB;
  w.st = p; p += kB * kB;
  w.o = p; p += kB * HSp;
  w.m = p; p += kB;
  w.l = p;
  return w;
}

// kv heads whose K and V are packed at once (a round; rounds are separated by
// barriers): as many as fit in kFwdPackFloats, and at least enough that their
// query blocks give every thread a few tasks.
constexpr int64_t kFwdPackFloats = int64_t{1} << 21;  // 8 MB
int fwd_groups_per_round(const Dims& d, int threads) {
  const int64_t busy = (4LL * threads + static_cast<int64_t>(d.G) * d.nblk - 1) / (static_cast<int64_t>(d.G) * d.nblk);
  const int64_t fit = kFwdPackFloats / (2LL * d.T * d.HSp);
  return static_cast<int>(std::clamp<int64_t>(std::max(busy, fit), 1, static_cast<int64_t>(d.B) * d.NKV));
}

// One (b, h, query block) against K, V of its kv head packed as (T, HSp): all key
// blocks up to the diagonal, online softmax.
void forward_query_block(const Dims& d, float* out, float* lse, const float* qkv, const int32_t* seg, int b, int h,
                         int qb, const float* kp, const float* vp, const FwdTiles& w) {
  const int i0 = qb * kB, nr = std::min(kB, d.T - i0), HS = d.HS, HSp = d.HSp;
  const float* qsrc = qkv + static_cast<int64_t>(b) * d.T * d.R + static_cast<int64_t>(h) * HS;
  const int32_t* seg_b = seg ? seg + static_cast<int64_t>(b) * d.T : nullptr;

  // Q^T, scaled so the scores come out scaled; columns >= nr zero (their results are dropped).
  for (int c = 0; c < HSp; ++c) std::fill(w.qt + c * kB, w.qt + (c + 1) * kB, 0.0f);
  for (int r = 0; r < nr; ++r) {
    const float* q = qsrc + static_cast<int64_t>(i0 + r) * d.R;
    for (int c = 0; c < HS; ++c) w.qt[c * kB + r] = q[c] * d.scale;
  }
  std::fill(w.o, w.o + static_cast<size_t>(kB) * HSp, 0.0f);
  std::fill(w.m, w.m + kB, kNegInf);
  std::fill(w.l, w.l + kB, 0.0f);
  const SegRange qs = seg_range(seg_b, i0, nr);

  for (int kb = 0; kb <= qb; ++kb) {
    const int j0 = kb * kB, nc = std::min(kB, d.T - j0);
    const TileMask tm = classify(seg_b, qs, seg_range(seg_b, j0, nc), i0, j0, nc);
    if (tm == TileMask::dead) continue;
    const float* k = kp + static_cast<int64_t>(j0) * HSp;
    const float* v = vp + static_cast<int64_t>(j0) * HSp;
    gemm<false>(w.st, kB, k, HSp, 1, w.qt, kB, nc, kB, HS);  // S^T (nc, kB) = K Q^T
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
    gemm<true>(w.o, HSp, w.st, 1, kB, v, HSp, nr, HSp, nc);  // O += P V
  }

  float* lse_h = lse + (static_cast<int64_t>(b) * d.NH + h) * d.T;
  for (int r = 0; r < nr; ++r) {
    const int i = i0 + r;
    const float inv = 1.0f / w.l[r];  // l >= 1: a query always sees itself
    float* o = out + (static_cast<int64_t>(b) * d.T + i) * d.C + static_cast<int64_t>(h) * HS;
    for (int c = 0; c < HS; ++c) o[c] = w.o[r * HSp + c] * inv;
    lse_h[i] = w.m[r] + std::log(w.l[r]);
  }
}

// ---- backward ---------------------------------------------------------------

struct BwdTiles {
  float* k;    // (kB, HSp) key block
  float* kt;   // (HS, kB)  K^T
  float* vt;   // (HS, kB)  V^T
  float* s;    // (kB, kB)  S then P: rows queries, columns keys
  float* dp;   // (kB, kB)  dP then dS
  float* dk;   // (kB, HSp) dK of the key block (accumulated over query heads and blocks)
  float* dv;   // (kB, HSp) dV likewise
  float* dq;   // (G*T, HSp) unscaled dQ of one kv head's query heads
  // One kv head's query heads packed (row hh*T + i): scaled Q, dO, and D = dO . O.
  float* q;    // (G*T, HSp)
  float* dO;   // (G*T, HSp)
  float* D;    // (G*T)
};

size_t bwd_tile_floats(const Dims& d) {
  const size_t rows = static_cast<size_t>(d.G) * d.T;
  return static_cast<size_t>(5) * kB * d.HSp + static_cast<size_t>(2) * kB * kB + 3 * rows * d.HSp +
         align_up(rows, kLanes);
}

BwdTiles carve_bwd(float* p, const Dims& d) {
  const size_t t = static_cast<size_t>(kB) * d.HSp, rows = static_cast<size_t>(d.G) * d.T;
  BwdTiles w;
  w.k = p; p += t;
  w.kt = p; p += t;
  w.vt = p; p += t;
  w.dk = p; p += t;
  w.dv = p; p += t;
  w.s = p; p += kB * kB;
  w.dp = p; p += kB * kB;
  w.dq = p; p += rows * d.HSp;
  w.q = p; p += rows * d.HSp;
  w.dO = p; p += rows * d.HSp;
  w.D = p;
  return w;
}

// Packs rows [r0, r1) of (b, g)'s query heads (row r = hh*T + i) into q, dO, D of `w`.
void pack_queries(const Dims& d, const float* qkv, const float* dout, const float* out, int b, int g, int64_t r0,
                  int64_t r1, const BwdTiles& w) {
  for (int64_t r = r0; r < r1; ++r) {
    const int hh = static_cast<int>(r / d.T), i = static_cast<int>(r % d.T), h = g * d.G + hh;
    const int64_t row = static_cast<int64_t>(b) * d.T + i;
    pack_row(w.q + r * d.HSp, qkv + row * d.R + static_cast<int64_t>(h) * d.HS, d.HS, d.HSp, d.scale);
    const float* dO = dout + row * d.C + static_cast<int64_t>(h) * d.HS;
    const float* O = out + row * d.C + static_cast<int64_t>(h) * d.HS;
    pack_row(w.dO + r * d.HSp, dO, d.HS, d.HSp);
    w.D[r] = dot(dO, O, d.HS);
  }
}

// One (b, kv head g, key block kb): dK, dV of the block from every query head of the
// group and every query block at or below the diagonal, reading the group's packed
// q, dO, D from `in`; dQ contributions into w.dq.
void backward_key_block(const Dims& d, float* dqkv, const float* qkv, const float* lse, const int32_t* seg, int b,
                        int g, int kb, const BwdTiles& in, const BwdTiles& w, bool set) {
  const int j0 = kb * kB, nc = std::min(kB, d.T - j0), HS = d.HS, HSp = d.HSp;
  const float* base = qkv + static_cast<int64_t>(b) * d.T * d.R;
  const float* ksrc = base + static_cast<int64_t>(d.NH + g) * HS;
  const float* vsrc = base + static_cast<int64_t>(d.NH + d.NKV + g) * HS;
  const int32_t* seg_b = seg ? seg + static_cast<int64_t>(b) * d.T : nullptr;

  for (int j = 0; j < nc; ++j) pack_row(w.k + j * HSp, ksrc + static_cast<int64_t>(j0 + j) * d.R, HS, HSp);
  pack_rows_t(w.kt, ksrc, d.R, j0, nc, HS);
  pack_rows_t(w.vt, vsrc, d.R, j0, nc, HS);
  std::fill(w.dk, w.dk + static_cast<size_t>(kB) * HSp, 0.0f);
  std::fill(w.dv, w.dv + static_cast<size_t>(kB) * HSp, 0.0f);
  const SegRange ks = seg_range(seg_b, j0, nc);

  for (int hh = 0; hh < d.G; ++hh) {
    const float* lse_h = lse + (static_cast<int64_t>(b) * d.NH + g * d.G + hh) * d.T;
    for (int qb = kb; qb < d.nblk; ++qb) {
      const int i0 = qb * kB, nr = std::min(kB, d.T - i0);
      const TileMask tm = classify(seg_b, seg_range(seg_b, i0, nr), ks, i0, j0, nc);
      if (tm == TileMask::dead) continue;
      const int64_t r0 = static_cast<int64_t>(hh) * d.T + i0;  // packed row of query i0
      const float* q = in.q + r0 * HSp;
      const float* dO = in.dO + r0 * HSp;
      gemm<false>(w.s, kB, q, HSp, 1, w.kt, kB, nr, kB, HS);    // S = Q K^T (scaled)
      gemm<false>(w.dp, kB, dO, HSp, 1, w.vt, kB, nr, kB, HS);  // dP = dO V^T
      for (int r = 0; r < nr; ++r) {
        const int i = i0 + r;
        float* s = w.s + r * kB;
        float* dp = w.dp + r * kB;
        if (tm == TileMask::partial)
          for (int j = 0; j < nc; ++j) s[j] = visible(seg_b, j0 + j, i) ? s[j] : kNegInf;
        const v16 L = splat(lse_h[i]), D = splat(in.D[r0 + r]);
        for (int c = 0; c < kB; c += kLanes) {  // columns >= nc are never read below
          const v16 p = exp16(load(s + c) - L);
          store(s + c, p);
          store(dp + c, p * (load(dp + c) - D));  // dS = P * (dP - D)
        }
      }
      gemm<true>(w.dv, HSp, w.s, 1, kB, dO, HSp, nc, HSp, nr);              // dV += P^T dO
      gemm<true>(w.dk, HSp, w.dp, 1, kB, q, HSp, nc, HSp, nr);              // dK += dS^T (scale Q)
      gemm<true>(w.dq + r0 * HSp, HSp, w.dp, kB, 1, w.k, HSp, nr, HSp, nc);  // dQ += dS K (scaled later)
    }
  }

  float* dbase = dqkv + static_cast<int64_t>(b) * d.T * d.R;
  for (int j = 0; j < nc; ++j) {
    float* dk = dbase + static_cast<int64_t>(j0 + j) * d.R + static_cast<int64_t>(d.NH + g) * HS;
    float* dv = dbase + static_cast<int64_t>(j0 + j) * d.R + static_cast<int64_t>(d.NH + d.NKV + g) * HS;
    for (int c = 0; c < HS; ++c) {
      dk[c] = (set ? 0.0f : dk[c]) + w.dk[j * HSp + c];
      dv[c] = (set ? 0.0f : dv[c]) + w.dv[j * HSp + c];
    }
  }
}

// dqkv's query rows [r0, r1) of (b, g) (row r = hh*T + i) += scale * sum of the
// `n` dQ accumulators, added in order (with `set`, = instead of +=).
void add_dq(const Dims& d, float* dqkv, const float* const* dq, int n, int b, int g, int64_t r0, int64_t r1,
            bool set) {
  for (int64_t r = r0; r < r1; ++r) {
    const int hh = static_cast<int>(r / d.T), i = static_cast<int>(r % d.T);
    float* dst = dqkv + (static_cast<int64_t>(b) * d.T + i) * d.R + static_cast<int64_t>(g * d.G + hh) * d.HS;
    for (int c = 0; c < d.HS; ++c) {
      float s = dq[0][r * d.HSp + c];
      for (int t = 1; t < n; ++t) s += dq[t][r * d.HSp + c];
      dst[c] = (set ? 0.0f : dst[c]) + d.scale * s;
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

// Tiny problems run on one thread: a parallel region costs more than it saves.
bool worth_threads(const Dims& d) {
  const double fma = static_cast<double>(d.B) * d.NH * d.T * d.T * d.HS;  // causal forward, both matmuls
  return fma >= double{1 << 23};
}

void check_scratch(const char* what, size_t have, size_t need) {
  if (have < need)
    throw Error(std::string(what) + ": scratch of " + std::to_string(have) + " floats is too small (need " +
                std::to_string(need) + ")");
}

size_t fwd_shared_floats(const Dims& d, int threads) {
  return static_cast<size_t>(2) * fwd_groups_per_round(d, threads) * d.T * d.HSp;
}

}  // namespace

size_t attention_flash_forward_scratch_floats(int B, int T, int NH, int NKV, int HS, int threads) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  const int n = resolve_threads(threads);
  return fwd_shared_floats(d, n) + fwd_tile_floats(d.HSp) * static_cast<size_t>(n);
}

size_t attention_flash_backward_scratch_floats(int B, int T, int NH, int NKV, int HS, int threads) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  return bwd_tile_floats(d) * static_cast<size_t>(resolve_threads(threads));
}

void attention_flash_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH,
                             int NKV, int HS, float* scratch, size_t scratch_floats) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  const int threads = omp_get_max_threads();
  const size_t shared = fwd_shared_floats(d, threads), per_thread = fwd_tile_floats(d.HSp);
  check_scratch("attention_flash_forward", scratch_floats, shared + per_thread * threads);
  const int groups = B * NKV, per_round = fwd_groups_per_round(d, threads);
  const int64_t plane = static_cast<int64_t>(T) * d.HSp;  // one packed (T, HSp) head
  float* kpack = scratch;                                 // (per_round, T, HSp)
  float* vpack = scratch + per_round * plane;             // (per_round, T, HSp)
#pragma omp parallel num_threads(threads) if (worth_threads(d))
  {
    const FwdTiles w = carve_fwd(scratch + shared + per_thread * omp_get_thread_num(), d.HSp);
    for (int g0 = 0; g0 < groups; g0 += per_round) {
      const int ng = std::min(per_round, groups - g0);
      // Pack K and V of this round's kv heads contiguous: every query block re-reads them.
#pragma omp for schedule(static)
      for (int64_t r = 0; r < static_cast<int64_t>(ng) * T; ++r) {
        const int gi = static_cast<int>(r / T), t = static_cast<int>(r % T);
        const int b = (g0 + gi) / NKV, g = (g0 + gi) % NKV;
        const float* row = qkv + (static_cast<int64_t>(b) * T + t) * d.R;
        pack_row(kpack + r * d.HSp, row + static_cast<int64_t>(NH + g) * HS, HS, d.HSp);
        pack_row(vpack + r * d.HSp, row + static_cast<int64_t>(NH + NKV + g) * HS, HS, d.HSp);
      }
      // Tasks (kv head, query head, query block), longest query blocks first for a short tail.
      const int64_t heads = static_cast<int64_t>(ng) * d.G, tasks = heads * d.nblk;
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < tasks; ++t) {
        const int qb = d.nblk - 1 - static_cast<int>(t / heads);
        const int x = static_cast<int>(t % heads), gi = x / d.G;
        const int b = (g0 + gi) / NKV, h = ((g0 + gi) % NKV) * d.G + x % d.G;
        forward_query_block(d, out, lse, qkv, seg, b, h, qb, kpack + gi * plane, vpack + gi * plane, w);
      }
    }
  }
}

void attention_flash_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                              const float* lse, const int32_t* seg, int B, int T, int NH, int NKV, int HS,
                              float* scratch, size_t scratch_floats, FlashBackwardSplit split, Grad mode) {
  const Dims d = make_dims(B, T, NH, NKV, HS);
  const int threads = omp_get_max_threads();
  const size_t per_thread = bwd_tile_floats(d);
  check_scratch("attention_flash_backward", scratch_floats, per_thread * threads);
  const bool by_group = use_by_group(d, threads, split);
  const bool set = mode == Grad::set;
  const int pairs = B * NKV;
  const int64_t rows = static_cast<int64_t>(d.G) * T;  // query rows of one kv head
  const size_t dq_floats = static_cast<size_t>(rows) * d.HSp;
  std::vector<const float*> parts(threads);  // each thread's dQ accumulator
  for (int t = 0; t < threads; ++t) parts[t] = carve_bwd(scratch + per_thread * t, d).dq;
  const BwdTiles shared = carve_bwd(scratch, d);  // by_key_block: thread 0's packed queries serve all

#pragma omp parallel num_threads(threads) if (worth_threads(d))
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const BwdTiles w = carve_bwd(scratch + per_thread * tid, d);
    if (by_group) {
#pragma omp for schedule(dynamic, 1)
      for (int p = 0; p < pairs; ++p) {
        const int b = p / NKV, g = p % NKV;
        pack_queries(d, qkv, dout, out, b, g, 0, rows, w);
        std::fill(w.dq, w.dq + dq_floats, 0.0f);
        for (int kb = 0; kb < d.nblk; ++kb) backward_key_block(d, dqkv, qkv, lse, seg, b, g, kb, w, w, set);
        const float* dq = w.dq;
        add_dq(d, dqkv, &dq, 1, b, g, 0, rows, set);
      }
    } else {
      const int64_t chunk = (rows + nth - 1) / nth;
      const int64_t r0 = std::min(rows, chunk * tid), r1 = std::min(rows, chunk * (tid + 1));
      for (int p = 0; p < pairs; ++p) {
        const int b = p / NKV, g = p % NKV;
        std::fill(w.dq, w.dq + dq_floats, 0.0f);
        pack_queries(d, qkv, dout, out, b, g, r0, r1, shared);
#pragma omp barrier
        // Snake order (0..n-1, n-1..0, ...): early key blocks carry the most query blocks.
        for (int round = 0; round * nth < d.nblk; ++round) {
          const int kb = round * nth + (round % 2 == 0 ? tid : nth - 1 - tid);
          if (kb < d.nblk) backward_key_block(d, dqkv, qkv, lse, seg, b, g, kb, shared, w, set);
        }
#pragma omp barrier
        // Sum the per-thread dQ partials in thread order: deterministic for a given thread count.
        add_dq(d, dqkv, parts.data(), nth, b, g, r0, r1, set);
#pragma omp barrier
      }
    }
  }
}

// ---- ops.inc entry points: the caller's workspace when it is big enough ----------

size_t attention_forward_workspace(int B, int T, int NH, int NKV, int HS, int threads) {
  return attention_flash_forward_scratch_floats(B, T, NH, NKV, HS, threads);
}

size_t attention_backward_workspace(int B, int T, int NH, int NKV, int HS, int threads) {
  return attention_flash_backward_scratch_floats(B, T, NH, NKV, HS, threads);
}

namespace {
// The caller's workspace when it holds n floats, else `own`, allocated for this call.
float* scratch_for(Workspace ws, size_t n, AlignedBuffer& own) {
  if (ws.data && ws.floats >= n) return ws.data;
  own.resize(n * sizeof(float));
  return own.as<float>();
}
}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, const int32_t* seg, int B, int T, int NH, int NKV,
                       int HS, Workspace ws) {
  const size_t n = attention_flash_forward_scratch_floats(B, T, NH, NKV, HS);
  AlignedBuffer own;
  attention_flash_forward(out, lse, qkv, seg, B, T, NH, NKV, HS, scratch_for(ws, n, own), n);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        const int32_t* seg, int B, int T, int NH, int NKV, int HS, Grad mode, Workspace ws) {
  const size_t n = attention_flash_backward_scratch_floats(B, T, NH, NKV, HS);
  AlignedBuffer own;
  attention_flash_backward(dqkv, dout, qkv, out, lse, seg, B, T, NH, NKV, HS, scratch_for(ws, n, own), n,
                           FlashBackwardSplit::automatic, mode);
}

}  // namespace teddy::kernels::cpu
