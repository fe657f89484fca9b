// NF4 and bitsandbytes' 8-bit dynamic map (core/nf4.h).
#include "teddy/core/nf4.h"

#include <algorithm>
#include <cmath>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"

namespace teddy {

const std::array<float, 16>& nf4_levels() {
  static const std::array<float, 16> k = {-1.0f,
                                          -0.6961928009986877f,
                                          -0.5250730514526367f,
                                          -0.39491748809814453f,
                                          -0.28444138169288635f,
                                          -0.18477343022823334f,
                                          -0.09105003625154495f,
                                          0.0f,
                                          0.07958029955625534f,
                                          0.16093020141124725f,
                                          0.24611230194568634f,
                                          0.33791524171829224f,
                                          0.44070982933044434f,
                                          0.5626170039176941f,
                                          0.7229568362236023f,
                                          1.0f};
  return k;
}

const std::array<float, 15>& nf4_thresholds() {
  static const std::array<float, 15> t = [] {
    std::array<float, 15> r{};
    const auto& l = nf4_levels();
    for (int i = 0; i < 15; ++i) r[i] = static_cast<float>((static_cast<double>(l[i]) + l[i + 1]) / 2);
    return r;
  }();
  return t;
}

uint8_t nf4_code(float x) {
  // The index of the first threshold x does not exceed; NaN exceeds none (code 0).
  const auto& t = nf4_thresholds();
  uint8_t c = 0;
  for (int i = 0; i < 15; ++i) c += x > t[i];
  return c;
}

const std::array<float, 256>& dynamic_map8() {
  // bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
  // for exponent i = 0..6, the 2^i means of neighbouring torch.linspace(0.1, 1, 2^i + 1)
  // points (float32), times float32(10^(i-6)), both signs; then 0 and 1; sorted. Listed
  // as torch computes them (its linspace rounds differently from start + i*step, so the
  // table is data, checked against the running torch by tests/core/test_nf4.cpp).
  static const std::array<float, 256> m = [] {
    std::array<float, 256> r = {
      -0x1.fc66660000000p-1f, -0x1.f533320000000p-1f, -0x1.ee00000000000p-1f, -0x1.e6cccc0000000p-1f,
      -0x1.df99980000000p-1f, -0x1.d866660000000p-1f, -0x1.d133340000000p-1f, -0x1.ca00000000000p-1f,
      -0x1.c2cccc0000000p-1f, -0x1.bb99980000000p-1f, -0x1.b466660000000p-1f, -0x1.ad33320000000p-1f,
      -0x1.a600000000000p-1f, -0x1.9ecccc0000000p-1f, -0x1.9799980000000p-1f, -0x1.9066660000000p-1f,
      -0x1.8933340000000p-1f, -0x1.8200000000000p-1f, -0x1.7accce0000000p-1f, -0x1.73999a0000000p-1f,
      -0x1.6c66680000000p-1f, -0x1.6533340000000p-1f, -0x1.5e00000000000p-1f, -0x1.56ccce0000000p-1f,
      -0x1.4f999a0000000p-1f, -0x1.4866660000000p-1f, -0x1.4133340000000p-1f, -0x1.3a00000000000p-1f,
      -0x1.32cccc0000000p-1f, -0x1.2b999a0000000p-1f, -0x1.2466680000000p-1f, -0x1.1d33340000000p-1f,
      -0x1.1600000000000p-1f, -0x1.0ecccc0000000p-1f, -0x1.07999a0000000p-1f, -0x1.0066660000000p-1f,
      -0x1.f266680000000p-2f, -0x1.e400000000000p-2f, -0x1.d599980000000p-2f, -0x1.c733340000000p-2f,
      -0x1.b8cccc0000000p-2f, -0x1.aa66640000000p-2f, -0x1.9c00000000000p-2f, -0x1.8d99980000000p-2f,
      -0x1.7f33340000000p-2f, -0x1.70cccc0000000p-2f, -0x1.6266640000000p-2f, -0x1.5400000000000p-2f,
      -0x1.4599980000000p-2f, -0x1.3733340000000p-2f, -0x1.28cccc0000000p-2f, -0x1.1a66680000000p-2f,
      -0x1.0c00000000000p-2f, -0x1.fb33340000000p-3f, -0x1.de66680000000p-3f, -0x1.c1999a0000000p-3f,
      -0x1.a4cccc0000000p-3f, -0x1.8800000000000p-3f, -0x1.6b33320000000p-3f, -0x1.4e66660000000p-3f,
      -0x1.31999a0000000p-3f, -0x1.14cccc0000000p-3f, -0x1.f000000000000p-4f, -0x1.b666680000000p-4f,
      -0x1.93d70a0000000p-4f, -0x1.8851ea0000000p-4f, -0x1.7cccce0000000p-4f, -0x1.7147ae0000000p-4f,
      -0x1.65c2900000000p-4f, -0x1.5a3d700000000p-4f, -0x1.4eb8500000000p-4f, -0x1.4333340000000p-4f,
      -0x1.37ae140000000p-4f, -0x1.2c28f60000000p-4f, -0x1.20a3d60000000p-4f, -0x1.151eba0000000p-4f,
      -0x1.09999a0000000p-4f, -0x1.fc28f40000000p-5f, -0x1.e51eba0000000p-5f, -0x1.ce147a0000000p-5f,
      -0x1.b70a3e0000000p-5f, -0x1.a000000000000p-5f, -0x1.88f5c20000000p-5f, -0x1.71eb860000000p-5f,
      -0x1.5ae1460000000p-5f, -0x1.43d70a0000000p-5f, -0x1.2cccce0000000p-5f, -0x1.15c28e0000000p-5f,
      -0x1.fd70a40000000p-6f, -0x1.cf5c260000000p-6f, -0x1.a147ae0000000p-6f, -0x1.7333340000000p-6f,
      -0x1.451eb80000000p-6f, -0x1.170a3e0000000p-6f, -0x1.d1eb860000000p-7f, -0x1.75c2900000000p-7f,
      -0x1.3e76c80000000p-7f, -0x1.2c08300000000p-7f, -0x1.19999a0000000p-7f, -0x1.072b020000000p-7f,
      -0x1.e978d40000000p-8f, -0x1.c49ba60000000p-8f, -0x1.9fbe760000000p-8f, -0x1.7ae1480000000p-8f,
      -0x1.56041a0000000p-8f, -0x1.3126e80000000p-8f, -0x1.0c49ba0000000p-8f, -0x1.ced9140000000p-9f,
      -0x1.851eb80000000p-9f, -0x1.3b645a0000000p-9f, -0x1.e353f80000000p-10f, -0x1.4fdf3a0000000p-10f,
      -0x1.eecbfe0000000p-11f, -0x1.b3d07c0000000p-11f, -0x1.78d5000000000p-11f, -0x1.3dd9820000000p-11f,
      -0x1.02de020000000p-11f, -0x1.8fc5060000000p-12f, -0x1.19ce0a0000000p-12f, -0x1.47ae160000000p-13f,
      -0x1.743e960000000p-14f, -0x1.15df660000000p-14f, -0x1.6f00680000000p-15f, -0x1.64840c0000000p-16f,
      -0x1.040bfe0000000p-17f, -0x1.b435280000000p-19f, -0x1.27476e0000000p-21f, 0x0.0p+0f,
      0x1.27476e0000000p-21f, 0x1.b435280000000p-19f, 0x1.040bfe0000000p-17f, 0x1.64840c0000000p-16f,
      0x1.6f00680000000p-15f, 0x1.15df660000000p-14f, 0x1.743e960000000p-14f, 0x1.47ae160000000p-13f,
      0x1.19ce0a0000000p-12f, 0x1.8fc5060000000p-12f, 0x1.02de020000000p-11f, 0x1.3dd9820000000p-11f,
      0x1.78d5000000000p-11f, 0x1.b3d07c0000000p-11f, 0x1.eecbfe0000000p-11f, 0x1.4fdf3a0000000p-10f,
      0x1.e353f80000000p-10f, 0x1.3b645a0000000p-9f, 0x1.851eb80000000p-9f, 0x1.ced9140000000p-9f,
      0x1.0c49ba0000000p-8f, 0x1.3126e80000000p-8f, 0x1.56041a0000000p-8f, 0x1.7ae1480000000p-8f,
      0x1.9fbe760000000p-8f, 0x1.c49ba60000000p-8f, 0x1.e978d40000000p-8f, 0x1.072b020000000p-7f,
      0x1.19999a0000000p-7f, 0x1.2c08300000000p-7f, 0x1.3e76c80000000p-7f, 0x1.75c2900000000p-7f,
      0x1.d1eb860000000p-7f, 0x1.170a3e0000000p-6f, 0x1.451eb80000000p-6f, 0x1.7333340000000p-6f,
      0x1.a147ae0000000p-6f, 0x1.cf5c260000000p-6f, 0x1.fd70a40000000p-6f, 0x1.15c28e0000000p-5f,
      0x1.2cccce0000000p-5f, 0x1.43d70a0000000p-5f, 0x1.5ae1460000000p-5f, 0x1.71eb860000000p-5f,
      0x1.88f5c20000000p-5f, 0x1.a000000000000p-5f, 0x1.b70a3e0000000p-5f, 0x1.ce147a0000000p-5f,
      0x1.e51eba0000000p-5f, 0x1.fc28f40000000p-5f, 0x1.09999a0000000p-4f, 0x1.151eba0000000p-4f,
      0x1.20a3d60000000p-4f, 0x1.2c28f60000000p-4f, 0x1.37ae140000000p-4f, 0x1.4333340000000p-4f,
      0x1.4eb8500000000p-4f, 0x1.5a3d700000000p-4f, 0x1.65c2900000000p-4f, 0x1.7147ae0000000p-4f,
      0x1.7cccce0000000p-4f, 0x1.8851ea0000000p-4f, 0x1.93d70a0000000p-4f, 0x1.b666680000000p-4f,
      0x1.f000000000000p-4f, 0x1.14cccc0000000p-3f, 0x1.31999a0000000p-3f, 0x1.4e66660000000p-3f,
      0x1.6b33320000000p-3f, 0x1.8800000000000p-3f, 0x1.a4cccc0000000p-3f, 0x1.c1999a0000000p-3f,
      0x1.de66680000000p-3f, 0x1.fb33340000000p-3f, 0x1.0c00000000000p-2f, 0x1.1a66680000000p-2f,
      0x1.28cccc0000000p-2f, 0x1.3733340000000p-2f, 0x1.4599980000000p-2f, 0x1.5400000000000p-2f,
      0x1.6266640000000p-2f, 0x1.70cccc0000000p-2f, 0x1.7f33340000000p-2f, 0x1.8d99980000000p-2f,
      0x1.9c00000000000p-2f, 0x1.aa66640000000p-2f, 0x1.b8cccc0000000p-2f, 0x1.c733340000000p-2f,
      0x1.d599980000000p-2f, 0x1.e400000000000p-2f, 0x1.f266680000000p-2f, 0x1.0066660000000p-1f,
      0x1.07999a0000000p-1f, 0x1.0ecccc0000000p-1f, 0x1.1600000000000p-1f, 0x1.1d33340000000p-1f,
      0x1.2466680000000p-1f, 0x1.2b999a0000000p-1f, 0x1.32cccc0000000p-1f, 0x1.3a00000000000p-1f,
      0x1.4133340000000p-1f, 0x1.4866660000000p-1f, 0x1.4f999a0000000p-1f, 0x1.56ccce0000000p-1f,
      0x1.5e00000000000p-1f, 0x1.6533340000000p-1f, 0x1.6c66680000000p-1f, 0x1.73999a0000000p-1f,
      0x1.7accce0000000p-1f, 0x1.8200000000000p-1f, 0x1.8933340000000p-1f, 0x1.9066660000000p-1f,
      0x1.9799980000000p-1f, 0x1.9ecccc0000000p-1f, 0x1.a600000000000p-1f, 0x1.ad33320000000p-1f,
      0x1.b466660000000p-1f, 0x1.bb99980000000p-1f, 0x1.c2cccc0000000p-1f, 0x1.ca00000000000p-1f,
      0x1.d133340000000p-1f, 0x1.d866660000000p-1f, 0x1.df99980000000p-1f, 0x1.e6cccc0000000p-1f,
      0x1.ee00000000000p-1f, 0x1.f533320000000p-1f, 0x1.fc66660000000p-1f, 0x1.0000000000000p+0f};
    r[0] = -1.0f;  // bitsandbytes' quantize_cpu sets code[0] = -1 (the map's range is [-0.993, 1])
    return r;
  }();
  return m;
}

uint8_t dynamic8_code(float x) {
  const auto& m = dynamic_map8();
  const auto it = std::lower_bound(m.begin(), m.end(), x);  // first level >= x
  if (it == m.begin()) return 0;
  if (it == m.end()) return 255;
  const size_t hi = static_cast<size_t>(it - m.begin()), lo = hi - 1;
  return static_cast<uint8_t>((x - m[lo] <= m[hi] - x) ? lo : hi);
}

size_t Nf4Tensor::bytes() const {
  return packed.size() + absmax.size() * 4 + absmax_q.size() + absmax2.size() * 4 + (double_quant ? 4 : 0);
}

float Nf4Tensor::block_absmax(size_t b) const {
  if (!double_quant) return absmax[b];
  const float level = absmax_q[b] ? dynamic_map8()[absmax_q[b]] : map_level0;
  return level * absmax2[b / kNf4Block2] + offset;
}

namespace {

// First level over blocks [b0, b1) of w (w[0] is element b0 * 64): codes into packed,
// float absmax into amax[b].
void quantize_blocks(const float* w, int64_t n, size_t b0, size_t b1, Nf4Tensor& t, std::vector<float>& amax) {
  const int64_t base = static_cast<int64_t>(b0) * kNf4Block;
#pragma omp parallel for schedule(static) if (b1 - b0 > 64)
  for (size_t b = b0; b < b1; ++b) {
    const int64_t lo = static_cast<int64_t>(b) * kNf4Block, hi = std::min<int64_t>(n, lo + kNf4Block);
    float m = 0;
    for (int64_t i = lo; i < hi; ++i) m = std::max(m, std::fabs(w[i - base]));
    amax[b] = m;
    const float inv = 1.0f / m;  // bitsandbytes multiplies by the reciprocal
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t c = nf4_code(w[i - base] * inv);
      uint8_t& byte = t.packed[static_cast<size_t>(i / 2)];
      byte |= (i % 2 == 0) ? static_cast<uint8_t>(c << 4) : c;  // blocks are even-sized: one writer per byte
    }
  }
}

// The second level (double quantization) over all of a tensor's absmax constants.
void finish(Nf4Tensor& t, std::vector<float> amax) {
  const size_t nb = t.blocks();
  if (!t.double_quant) {
    t.absmax = std::move(amax);
    return;
  }
  double sum = 0;
  for (float a : amax) sum += a;
  t.offset = nb ? static_cast<float>(sum / static_cast<double>(nb)) : 0.0f;
  t.absmax_q.resize(nb);
  t.absmax2.resize((nb + kNf4Block2 - 1) / kNf4Block2);
  for (size_t g = 0; g < t.absmax2.size(); ++g) {
    const size_t lo = g * kNf4Block2, hi = std::min(nb, lo + kNf4Block2);
    float m = 0;
    for (size_t b = lo; b < hi; ++b) m = std::max(m, std::fabs(amax[b] - t.offset));
    t.absmax2[g] = m;
    const float inv = 1.0f / m;
    for (size_t b = lo; b < hi; ++b) t.absmax_q[b] = dynamic8_code((amax[b] - t.offset) * inv);
  }
}

Nf4Tensor empty_tensor(int64_t n, bool double_quant) {
  if (n < 0) throw Error("nf4_quantize: negative size");
  Nf4Tensor t;
  t.numel = n;
  t.double_quant = double_quant;
  t.packed.assign(static_cast<size_t>((n + 1) / 2), 0);
  return t;
}

}  // namespace

Nf4Tensor nf4_quantize(const float* w, int64_t n, bool double_quant) {
  Nf4Tensor t = empty_tensor(n, double_quant);
  std::vector<float> amax(t.blocks());
  quantize_blocks(w, n, 0, t.blocks(), t, amax);
  finish(t, std::move(amax));
  return t;
}

Nf4Tensor nf4_quantize_chunked(int64_t n, bool double_quant, int64_t chunk,
                               const std::function<void(int64_t, int64_t, float*)>& fill) {
  if (chunk <= 0 || chunk % kNf4Block != 0) throw Error("nf4_quantize_chunked: chunk must be a positive multiple of 64");
  Nf4Tensor t = empty_tensor(n, double_quant);
  std::vector<float> amax(t.blocks());
  std::vector<float> buf(static_cast<size_t>(std::min(chunk, n)));
  for (int64_t lo = 0; lo < n; lo += chunk) {
    const int64_t hi = std::min(n, lo + chunk);
    fill(lo, hi, buf.data());
    quantize_blocks(buf.data(), n, static_cast<size_t>(lo / kNf4Block),
                    static_cast<size_t>((hi + kNf4Block - 1) / kNf4Block), t, amax);
  }
  finish(t, std::move(amax));
  return t;
}

void nf4_dequantize(const Nf4Tensor& t, int64_t begin, int64_t end, float* out) {
  if (begin < 0 || end > t.numel || begin > end) throw Error("nf4_dequantize: range outside the tensor");
  const auto& lv = nf4_levels();
  const int64_t b0 = begin / kNf4Block, b1 = (end + kNf4Block - 1) / kNf4Block;
#pragma omp parallel for schedule(static) if (end - begin > 65536)
  for (int64_t b = b0; b < b1; ++b) {
    const float a = t.block_absmax(static_cast<size_t>(b));
    const int64_t lo = std::max(begin, b * kNf4Block), hi = std::min(end, (b + 1) * kNf4Block);
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t byte = t.packed[static_cast<size_t>(i / 2)];
      out[i - begin] = lv[(i % 2 == 0) ? byte >> 4 : byte & 0x0F] * a;
    }
  }
}

void nf4_dequantize_bf16(const Nf4Tensor& t, int64_t begin, int64_t end, uint16_t* out) {
  if (begin < 0 || end > t.numel || begin > end) throw Error("nf4_dequantize_bf16: range outside the tensor");
  const auto& lv = nf4_levels();
  const int64_t b0 = begin / kNf4Block, b1 = (end + kNf4Block - 1) / kNf4Block;
#pragma omp parallel for schedule(static) if (end - begin > 65536)
  for (int64_t b = b0; b < b1; ++b) {
    // A block has one absmax, so its 16 possible values are rounded once, not per weight.
    const float a = t.block_absmax(static_cast<size_t>(b));
    uint16_t v[16];
    for (int c = 0; c < 16; ++c) v[c] = f32_to_bf16(lv[c] * a);
    const int64_t lo = std::max(begin, b * kNf4Block), hi = std::min(end, (b + 1) * kNf4Block);
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t byte = t.packed[static_cast<size_t>(i / 2)];
      out[i - begin] = v[(i % 2 == 0) ? byte >> 4 : byte & 0x0F];
    }
  }
}

}  // namespace teddy
