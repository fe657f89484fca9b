// NF4 with double quantization (core/nf4.h) against an independent numpy/torch
// reimplementation of bitsandbytes' algorithm (tests/reference/nf4_reference.py):
// packed bytes, absmax, the double-quantization codes, second-level scales and
// offset identical; the 16 levels equal the published codebook (REFERENCE.md), the
// derived decision points equal bitsandbytes' tree, the 8-bit map equals
// create_dynamic_map's. Every code is the nearest level (error at most half the gap
// of its interval, times absmax); range dequantization equals whole; 4.127 and 4.5
// bits per weight.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <random>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/core/error.h"
#include "teddy/core/nf4.h"
#include "teddy/io/safetensors.h"

using namespace teddy;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> u8(const SafetensorsFile& f, const std::string& k) {
  const SafeTensor& t = f.get(k);
  std::vector<uint8_t> v(t.bytes.size());
  std::memcpy(v.data(), t.bytes.data(), v.size());
  return v;
}
std::vector<float> f32(const SafetensorsFile& f, const std::string& k) { return f.to_f32(k); }

struct Cases {
  std::vector<std::pair<std::string, std::vector<float>>> v;
};

Cases make_cases() {
  Cases c;
  // Gaussian weights over more than 256 blocks, an odd count (a partial last block).
  c.v.push_back({"gauss", test::randn(64 * 256 * 2 + 37, 1, 0.02)});
  // Heavy tails (outliers dominate some blocks), a zero block, a constant block.
  std::vector<float> t = test::randn(64 * 20, 2, 1.0);
  for (size_t i = 0; i < t.size(); i += 97) t[i] *= 40;
  for (int i = 64; i < 128; ++i) t[i] = 0;
  for (int i = 128; i < 192; ++i) t[i] = -0.5f;
  c.v.push_back({"tails", t});
  // Values at and next to the decision points (times absmax 1): the tie rule shows.
  std::vector<float> e = {1.0f};
  for (float th : nf4_thresholds())
    for (float x : {th, std::nextafter(th, 2.0f), std::nextafter(th, -2.0f)}) e.push_back(x);
  c.v.push_back({"edges", e});
  return c;
}

TEST(Nf4, MatchesTheBitsandbytesReimplementation) {
  const Cases cases = make_cases();
  const fs::path dir = fs::path(TEDDY_BINARY_DIR) / ("test_nf4." + std::to_string(::getpid()));
  fs::create_directories(dir);
  SafetensorsWriter w;
  for (const auto& [name, v] : cases.v) w.add_f32("case." + name, {static_cast<int64_t>(v.size())}, v.data());
  w.write((dir / "in.safetensors").string());
  const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/nf4_reference.py' '" +
                          (dir / "in.safetensors").string() + "' '" + (dir / "out.safetensors").string() + "' > '" +
                          (dir / "log").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "the numpy/torch reference failed (needs /usr/bin/python3 with numpy and torch): "
                                         << cmd;
  const SafetensorsFile ref = SafetensorsFile::open((dir / "out.safetensors").string());
  // The tables.
  const std::vector<float> lv = f32(ref, "nf4"), th = f32(ref, "thresholds"), map = f32(ref, "map8");
  for (int i = 0; i < 16; ++i) EXPECT_EQ(nf4_levels()[i], lv[i]) << "level " << i;
  for (int i = 0; i < 15; ++i) EXPECT_EQ(nf4_thresholds()[i], th[i]) << "threshold " << i;
  for (int i = 0; i < 256; ++i) EXPECT_EQ(dynamic_map8()[i], map[i]) << "map8 level " << i;
  // Every case, both modes, bit for bit.
  for (const auto& [name, v] : cases.v) {
    SCOPED_TRACE(name);
    const Nf4Tensor q = nf4_quantize(v.data(), static_cast<int64_t>(v.size()), true);
    EXPECT_EQ(q.packed, u8(ref, "dq." + name + ".packed"));
    EXPECT_EQ(q.absmax_q, u8(ref, "dq." + name + ".absmax_q"));
    EXPECT_EQ(q.absmax2, f32(ref, "dq." + name + ".absmax2"));
    EXPECT_EQ(q.offset, f32(ref, "dq." + name + ".offset")[0]);
    const Nf4Tensor p = nf4_quantize(v.data(), static_cast<int64_t>(v.size()), false);
    EXPECT_EQ(p.packed, u8(ref, "plain." + name + ".packed"));
    EXPECT_EQ(p.absmax, f32(ref, "plain." + name + ".absmax"));
    EXPECT_EQ(p.packed, q.packed);  // the 4-bit codes do not depend on how absmax is stored
  }
  fs::remove_all(dir);
}

// Each weight dequantizes to the level nearest to w / absmax: its error is at most half
// the gap between that level and the neighbour on w's side, times absmax (plus one
// float rounding of the product, 2^-24 relative). With double quantization the absmax
// used is itself off by at most half the local gap of the 8-bit map times absmax2.
TEST(Nf4, ErrorWithinHalfTheLevelSpacing) {
  const std::vector<float> w = test::randn(64 * 300 + 5, 3, 0.05);
  const auto& lv = nf4_levels();
  for (bool dq : {false, true}) {
    SCOPED_TRACE(dq ? "double quantization" : "fp32 absmax");
    const Nf4Tensor q = nf4_quantize(w.data(), static_cast<int64_t>(w.size()), dq);
    std::vector<float> out(w.size());
    nf4_dequantize(q, 0, static_cast<int64_t>(w.size()), out.data());
    const Nf4Tensor exact = nf4_quantize(w.data(), static_cast<int64_t>(w.size()), false);
    double se = 0, sw = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const size_t b = i / kNf4Block;
      const double a = exact.absmax[b], ad = q.block_absmax(b);
      const int c = (q.packed[i / 2] >> ((i % 2) ? 0 : 4)) & 0xF;
      const double x = w[i] / a;
      const double lo = c > 0 ? lv[c - 1] : lv[0], hi = c < 15 ? lv[c + 1] : lv[15];
      const double half_gap = x >= lv[c] ? (hi - lv[c]) / 2 : (lv[c] - lo) / 2;
      ASSERT_LE(std::fabs(x - lv[c]), half_gap * (1 + 1e-6) + 1e-7) << "element " << i << ": not the nearest level";
      const double bound = half_gap * a + std::fabs(lv[c]) * std::fabs(ad - a) + std::fabs(out[i]) * 0x1p-24 + 1e-12;
      ASSERT_LE(std::fabs(out[i] - w[i]), bound) << "element " << i;
      se += (out[i] - w[i]) * static_cast<double>(out[i] - w[i]);
      sw += static_cast<double>(w[i]) * w[i];
    }
    if (dq) {
      // The 8-bit map's largest gap near |v| <= 1 is its top one (1 - 0.9929): the
      // dequantized absmax is within half that times absmax2 of the true one.
      const auto& m = dynamic_map8();
      double max_half_gap = 0;
      for (int i = 0; i < 255; ++i) max_half_gap = std::max(max_half_gap, (static_cast<double>(m[i + 1]) - m[i]) / 2);
      for (size_t b = 0; b < q.blocks(); ++b)
        EXPECT_LE(std::fabs(q.block_absmax(b) - exact.absmax[b]),
                  max_half_gap * q.absmax2[b / kNf4Block2] * (1 + 1e-6) + 1e-9);
    }
    // NF4 on Gaussian weights: relative RMS error about 0.1 (QLoRA's information-
    // theoretic optimum for normal data); far above means a wrong level or scale.
    const double rel = std::sqrt(se / sw);
    std::cout << "  NF4 " << (dq ? "dq" : "plain") << " relative RMS error " << rel << "\n";
    EXPECT_LT(rel, 0.15);
  }
}

TEST(Nf4, RangesBitsAndEdges) {
  const std::vector<float> w = test::randn(64 * 256 * 4, 4, 0.02);
  const Nf4Tensor q = nf4_quantize(w.data(), static_cast<int64_t>(w.size()), true);
  std::vector<float> all(w.size()), part(1000);
  nf4_dequantize(q, 0, static_cast<int64_t>(w.size()), all.data());
  nf4_dequantize(q, 12345, 13345, part.data());  // a range that starts mid-block and mid-byte
  EXPECT_EQ(std::memcmp(part.data(), all.data() + 12345, part.size() * sizeof(float)), 0);
  // 4 + 8/64 + 32/(64*256) (+ the offset's 32 bits over the tensor) and 4 + 32/64.
  EXPECT_NEAR(q.bits_per_weight(), 4.127, 5e-4);
  const Nf4Tensor p = nf4_quantize(w.data(), static_cast<int64_t>(w.size()), false);
  EXPECT_DOUBLE_EQ(p.bits_per_weight(), 4.5);
  EXPECT_THROW(nf4_dequantize(q, 10, static_cast<int64_t>(w.size()) + 1, all.data()), Error);
  // An all-zero tensor dequantizes to zeros.
  const std::vector<float> z(130, 0.0f);
  const Nf4Tensor qz = nf4_quantize(z.data(), 130, true);
  std::vector<float> oz(130, 1.0f);
  nf4_dequantize(qz, 0, 130, oz.data());
  for (float x : oz) EXPECT_EQ(x, 0.0f);
}

}  // namespace

// Built from pieces (a base loaded straight into NF4): any chunking of 64-multiples gives
// nf4_quantize's bytes, absmax codes, scales and offset, a partial last block included.
TEST(Nf4, ChunkedEqualsWhole) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 0.02f);
  for (bool dq : {true, false})
    for (int64_t n : {int64_t{1}, int64_t{64}, int64_t{64 * 256 * 2 + 37}, int64_t{100000}}) {
      std::vector<float> w(static_cast<size_t>(n));
      for (float& x : w) x = g(rng);
      const Nf4Tensor whole = nf4_quantize(w.data(), n, dq);
      for (int64_t chunk : {int64_t{64}, int64_t{640}, int64_t{1} << 20}) {
        int64_t next = 0;
        const Nf4Tensor t = nf4_quantize_chunked(n, dq, chunk, [&](int64_t lo, int64_t hi, float* out) {
          EXPECT_EQ(lo, next);  // ascending and contiguous
          EXPECT_LE(hi - lo, chunk);
          next = hi;
          std::copy(w.begin() + lo, w.begin() + hi, out);
        });
        EXPECT_EQ(next, n);
        EXPECT_EQ(t.packed, whole.packed) << n << " " << chunk;
        EXPECT_EQ(t.absmax, whole.absmax);
        EXPECT_EQ(t.absmax_q, whole.absmax_q);
        EXPECT_EQ(t.absmax2, whole.absmax2);
        EXPECT_EQ(t.offset, whole.offset);
      }
    }
  EXPECT_THROW(nf4_quantize_chunked(128, true, 100, [](int64_t, int64_t, float*) {}), Error);
}
