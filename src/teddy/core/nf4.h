#pragma once
// 4-bit NormalFloat (NF4) with double quantization, as QLoRA (Dettmers et al. 2023)
// defines it and bitsandbytes stores it (quantize_4bit(quant_type="nf4",
// blocksize=64, compress_statistics=True)):
//   - the weights, flattened row-major, in blocks of 64: absmax = max |w| per block,
//     each w * (1 / absmax) (float) mapped to the nearest of the 16 NF4 levels by the
//     midpoint tree of bitsandbytes' dQuantizeNF4 (x > midpoint: the upper level), two
//     codes per byte, the first element in the high nibble;
//   - double quantization: the float absmax constants, their mean subtracted, in blocks
//     of 256, each block's max |.| kept as a float and every value * (1 / that) mapped
//     to the nearest of bitsandbytes' 256 signed dynamic-map levels
//     (create_dynamic_map(signed=True)), one byte each.
// Dequantization: w = level[code] * absmax, absmax = map[q] * absmax2 + offset.
// Cost per weight: 4 + 8/64 + 32/(64*256) = 4.127 bits with double quantization,
// 4 + 32/64 = 4.5 without.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace teddy {

constexpr int kNf4Block = 64;     // weights per absmax
constexpr int kNf4Block2 = 256;   // absmax constants per second-level scale
// The 16 NF4 levels, bit for bit bitsandbytes' (and REFERENCE.md's) float values.
const std::array<float, 16>& nf4_levels();
// The 15 decision points: float(midpoint of adjacent levels, in double).
const std::array<float, 15>& nf4_thresholds();
// bitsandbytes' signed 8-bit dynamic map (256 levels in [-1, 1], ascending; level 0
// set to -1 as its CPU quantizer does).
const std::array<float, 256>& dynamic_map8();

uint8_t nf4_code(float x);         // x in [-1, 1] (NaN: code 0, as the tree does)
uint8_t dynamic8_code(float x);    // nearest level of dynamic_map8 (ties: the lower)

struct Nf4Tensor {
  int64_t numel = 0;
  bool double_quant = true;
  std::vector<uint8_t> packed;     // (numel + 1) / 2 bytes
  std::vector<float> absmax;       // per block of 64, when !double_quant
  std::vector<uint8_t> absmax_q;   // per block of 64, when double_quant
  std::vector<float> absmax2;      // per 256 blocks, when double_quant
  float offset = 0;                // mean of the absmax constants, when double_quant
  // The dynamic map's level 0 the absmax codes decode with: -1 (bitsandbytes' CPU
  // quantizer sets it, and teddy quantizes so), or a file's own (create_dynamic_map's
  // -0.99375 when a CUDA bitsandbytes wrote it: io/hf_bnb4.h keeps it).
  float map_level0 = -1.0f;
  size_t blocks() const { return static_cast<size_t>((numel + kNf4Block - 1) / kNf4Block); }
  size_t bytes() const;            // storage: packed + constants
  double bits_per_weight() const { return numel ? 8.0 * static_cast<double>(bytes()) / static_cast<double>(numel) : 0; }
  // The absmax of block b (dequantized when double_quant).
  float block_absmax(size_t b) const;
};

Nf4Tensor nf4_quantize(const float* w, int64_t n, bool double_quant = true);
// The same tensor built from pieces (so a base loads into NF4 without a full fp32 copy):
// fill(begin, end, out) writes elements [begin, end) as floats; it is called in
// ascending, contiguous ranges of at most `chunk` elements (chunk a multiple of 64,
// so no block straddles two calls). Bit-identical to nf4_quantize of the whole.
Nf4Tensor nf4_quantize_chunked(int64_t n, bool double_quant, int64_t chunk,
                               const std::function<void(int64_t, int64_t, float*)>& fill);
// out[i - begin] = w[i] for i in [begin, end): any range, so a GEMM can dequantize one
// tile of rows at a time.
void nf4_dequantize(const Nf4Tensor& t, int64_t begin, int64_t end, float* out);
// The same range straight to bf16 bit patterns: out[i - begin] = bf16(w[i]), rounded to
// nearest even from the fp32 value nf4_dequantize gives (core/dtype.h's f32_to_bf16), so
// it equals nf4_dequantize then convert_f32_to_bf16, without the fp32 pass.
void nf4_dequantize_bf16(const Nf4Tensor& t, int64_t begin, int64_t end, uint16_t* out);

}  // namespace teddy
