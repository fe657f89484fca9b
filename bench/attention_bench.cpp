#include "bench/attention_bench.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "teddy/core/buffer.h"
#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/baseline/attention_plain.h"

namespace teddy {
namespace {

// Bytes held by the buffers of one run; peak is the most held at once.
class ByteCounter {
 public:
  void add(size_t n) { held_ += n; peak_ = std::max(peak_, held_); }
  void sub(size_t n) { held_ -= n; }
  size_t peak() const { return peak_; }

 private:
  size_t held_ = 0, peak_ = 0;
};

// An AlignedBuffer whose bytes are counted while it lives. AlignedBuffer zeroes its
// memory, so the pages are really resident, not just reserved.
class CountedBuffer {
 public:
  CountedBuffer(ByteCounter& c, size_t floats) : counter_(c), buf_(floats * sizeof(float)) { c.add(buf_.bytes()); }
  ~CountedBuffer() { counter_.sub(buf_.bytes()); }
  CountedBuffer(const CountedBuffer&) = delete;
  CountedBuffer& operator=(const CountedBuffer&) = delete;
  float* f() { return buf_.as<float>(); }
  size_t floats() const { return buf_.bytes() / sizeof(float); }
  void zero() { buf_.zero(); }

 private:
  ByteCounter& counter_;
  AlignedBuffer buf_;
};

// Deterministic values in [-scale, scale) from a hash (parallel: qkv reaches 150 MB).
void fill(float* p, size_t n, uint64_t seed, float scale) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    p[i] = scale * (static_cast<float>(h >> 40) / 8388608.0f - 1.0f);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void validate(const AttentionBenchOptions& o) {
  auto bad = [](const std::string& flag, const std::string& rule, const std::string& got) {
    throw ConfigError(flag + ": " + rule + " (got " + got + ")");
  };
  if (o.seqs.empty()) bad("--seq", "give at least one sequence length", "none");
  for (int t : o.seqs)
    if (t < 1 || t > (1 << 20)) bad("--seq", "must be in [1, 1048576]", std::to_string(t));
  if (o.impls.empty()) bad("--impl", "give flash and/or plain", "none");
  for (const auto& i : o.impls)
    if (i != "flash" && i != "plain") bad("--impl", "must be flash or plain", "'" + i + "'");
  if (o.batch < 1) bad("--batch", "must be >= 1", std::to_string(o.batch));
  if (o.heads < 1) bad("--heads", "must be >= 1", std::to_string(o.heads));
  const int nkv = o.kv_heads ? o.kv_heads : o.heads;
  if (nkv < 1 || o.heads % nkv != 0) bad("--kv-heads", "must be >= 1 and divide --heads", std::to_string(nkv));
  if (o.head_dim < 1 || o.head_dim > 1024) bad("--head-dim", "must be in [1, 1024]", std::to_string(o.head_dim));
  if (o.reps < 1) bad("--reps", "must be >= 1", std::to_string(o.reps));
  if (o.warmup < 0) bad("--warmup", "must be >= 0", std::to_string(o.warmup));
  if (o.threads < 0) bad("--threads", "must be >= 0", std::to_string(o.threads));
  kernels::backend(o.backend);  // throws ConfigError naming the available ones
}

AttentionBenchResult run_one(const AttentionBenchOptions& o, const std::string& impl, int T) {
  AttentionBenchResult r;
  r.impl = impl;
  r.seq = T;
  r.batch = o.batch;
  r.heads = o.heads;
  r.kv_heads = o.kv_heads ? o.kv_heads : o.heads;
  r.head_dim = o.head_dim;
  r.threads = omp_get_max_threads();
  r.reps = o.reps;
  const int B = r.batch, NH = r.heads, NKV = r.kv_heads, HS = r.head_dim;
  const bool flash = impl == "flash";
  const kernels::Backend& k = kernels::backend(o.backend);
  if (!flash) {
    r.needed_bytes = attention_plain_bytes(B, T, NH, NKV, HS);
    if (r.needed_bytes > o.plain_max_bytes) {
      r.skipped = true;
      return r;
    }
  }

  ByteCounter bytes;
  {
    const size_t rows = static_cast<size_t>(B) * T;
    CountedBuffer qkv(bytes, rows * (NH + 2 * NKV) * HS);  // (B, T, (NH+2*NKV)*HS)
    CountedBuffer out(bytes, rows * NH * HS);              // (B, T, NH*HS)
    CountedBuffer lse(bytes, rows * NH);                   // (B, NH, T)
    CountedBuffer dout(bytes, rows * NH * HS);
    CountedBuffer dqkv(bytes, qkv.floats());
    fill(qkv.f(), qkv.floats(), o.seed, 1.0f);
    fill(dout.f(), dout.floats(), o.seed + 1, 1.0f);

    // flash: one scratch for both passes; plain: P (B,NH,T,T) kept from forward + (T,T) scratch.
    const size_t work_a =
        flash ? std::max(k.attention_forward_workspace(B, T, NH, NKV, HS, 0),
                         k.attention_backward_workspace(B, T, NH, NKV, HS, 0))
              : static_cast<size_t>(B) * NH * T * T;
    const size_t work_b = flash ? 0 : static_cast<size_t>(T) * T;
    CountedBuffer att(bytes, work_a), datt(bytes, work_b);

    std::vector<double> fwd, bwd, both;
    for (int rep = 0; rep < o.warmup + o.reps; ++rep) {
      dqkv.zero();  // the caller's per-step zeroing, not part of attention's time
      const auto t0 = std::chrono::steady_clock::now();
      if (flash)
        k.attention_forward(out.f(), lse.f(), qkv.f(), nullptr, B, T, NH, NKV, HS, {att.f(), att.floats()});
      else
        kernels::baseline::attention_plain_forward(out.f(), lse.f(), att.f(), qkv.f(), nullptr, B, T, NH, NKV, HS);
      const double ms_f = ms_since(t0);
      const auto t1 = std::chrono::steady_clock::now();
      if (flash)
        k.attention_backward(dqkv.f(), dout.f(), qkv.f(), out.f(), lse.f(), nullptr, B, T, NH, NKV, HS,
                             kernels::Grad::add, {att.f(), att.floats()});
      else
        kernels::baseline::attention_plain_backward(dqkv.f(), datt.f(), dout.f(), qkv.f(), att.f(), B, T, NH, NKV, HS);
      const double ms_b = ms_since(t1);
      if (rep < o.warmup) continue;
      fwd.push_back(ms_f);
      bwd.push_back(ms_b);
      both.push_back(ms_f + ms_b);
    }
    r.ms_fwd = median(fwd);
    r.ms_bwd = median(bwd);
    r.ms_fwd_bwd = median(both);
  }
  r.peak_bytes = bytes.peak();
  r.gflops = attention_flops(B, T, NH, HS) / (r.ms_fwd_bwd * 1e6);
  return r;
}

}  // namespace

double attention_flops(int B, int T, int NH, int HS) {
  const double fwd = 4.0 * B * NH * static_cast<double>(T) * T * HS / 2;
  return 3.5 * fwd;
}

size_t attention_plain_bytes(int B, int T, int NH, int NKV, int HS) {
  const size_t rows = static_cast<size_t>(B) * T;
  const size_t io = rows * (NH + 2 * NKV) * HS * 2 + rows * NH * HS * 2 + rows * NH;
  const size_t mats = static_cast<size_t>(B) * NH * T * T + static_cast<size_t>(T) * T;
  return (io + mats) * sizeof(float);
}

std::vector<AttentionBenchResult> run_attention_bench(const AttentionBenchOptions& opts,
                                                      const std::function<void(const AttentionBenchResult&)>& on_result) {
  validate(opts);
  if (opts.threads > 0) {
    omp_set_num_threads(opts.threads);
    openblas_set_num_threads(opts.threads);  // the plain kernel's sgemm
  }
  std::vector<AttentionBenchResult> results;
  for (int T : opts.seqs)
    for (const auto& impl : opts.impls) {
      results.push_back(run_one(opts, impl, T));
      if (on_result) on_result(results.back());
    }
  return results;
}

}  // namespace teddy
